import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";

export interface TestServer {
  url: string;
  app: FastifyInstance;
  recordDir: string;
  close(): Promise<void>;
}

/** The real server on an ephemeral loopback port, ICE kept on loopback, records in a fresh temp dir. */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const recordDir = env.RECORD_DIR ?? mkdtempSync(path.join(tmpdir(), "sfu-records-"));
  const config = loadConfig({
    ICE_HOSTS: "127.0.0.1",
    ICE_ADDITIONAL_HOSTS: "127.0.0.1",
    LOG_LEVEL: "warn",
    RATE_LIMIT_RPS: "1000",
    RATE_LIMIT_BURST: "1000",
    ...env,
    RECORD_DIR: recordDir,
  });
  const app = await buildApp(config);
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("server has no TCP address");
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${address.port}`,
    app,
    recordDir,
    close: () => (closing ??= app.close()),
  };
}
