// A Logger that keeps its lines, for tests that drive the core without fastify's pino.
import type { Logger } from "../../src/logger.js";

export interface LogLine {
  level: "info" | "warn" | "error";
  obj: Record<string, unknown>;
  msg: string;
}

/** Every line logged, in order, in `lines`. */
export function memoryLog(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine["level"]) =>
    (obj: object, msg: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  return { lines, info: at("info"), warn: at("warn"), error: at("error") };
}
