import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import { DomainError, type ErrorKind } from "../errors.js";

/** Retry-After of every 503 (RFC 9725 §4.6: a limit was reached, try again later). */
export const RETRY_AFTER_SECONDS = "5";

/** The one place a domain error's kind becomes an HTTP status. */
export const STATUS_OF_KIND: Readonly<Record<ErrorKind, number>> = {
  invalid_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  unsupported_codec: 422,
  capacity: 503,
  shutting_down: 503,
  start_failed: 500,
};

export function statusOf(err: DomainError): number {
  return STATUS_OF_KIND[err.kind];
}

/** Replies with a domain error in the API's shape (503s get Retry-After). */
export function sendDomainError(reply: FastifyReply, err: DomainError): FastifyReply {
  if (err.kind === "unauthorized") reply.header("WWW-Authenticate", 'Bearer realm="whip-whep"');
  return sendError(reply, statusOf(err), err.message);
}

export function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  if (status === 503 && !reply.hasHeader("Retry-After")) reply.header("Retry-After", RETRY_AFTER_SECONDS);
  return reply.code(status).type("application/json; charset=utf-8").send({ error: message });
}

/** Maps every failure to the API's JSON error shape (docs/api.md, "Errors"); details of a 500 go to the log only. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setNotFoundHandler((_request, reply) => sendError(reply, 404, "not found"));
  app.setErrorHandler((err: FastifyError | DomainError | Error, request, reply) => {
    if (err instanceof DomainError) return sendDomainError(reply, err);
    const code = (err as FastifyError).code;
    const status = (err as FastifyError).statusCode;
    if (code === "FST_ERR_CTP_BODY_TOO_LARGE") return sendError(reply, 413, "request body too large");
    if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return sendError(reply, 415, "unsupported media type");
    if (code === "FST_ERR_CTP_EMPTY_JSON_BODY" || code === "FST_ERR_CTP_INVALID_JSON_BODY" || (err as { validation?: unknown }).validation) {
      return sendError(reply, 400, "invalid request body");
    }
    if (status !== undefined && status >= 400 && status < 500) return sendError(reply, status, err.message);
    request.log.error({ err }, "request failed");
    return sendError(reply, 500, "internal server error");
  });
}
