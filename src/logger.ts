/**
 * The slice of pino the core logs through: fastify's logger satisfies it, and nothing below
 * src/http needs to import fastify to log. One line per event, with room and session ids.
 */
export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
