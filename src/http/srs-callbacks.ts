// Routes of the publish-callback receiver (docs/hooks.md, "SRS callback receiver"): POST
// /api/srs/callback and /api/v1/streams. The decision is CallbackReceiver's; this file reads the
// body whatever its Content-Type and writes the answer in the caller's dialect.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { dialectOf, type CallbackReceiver } from "../hooks/receiver.js";
import type { Logger } from "../logger.js";
import { sendError } from "./errors.js";
import { SCHEMAS } from "./schemas.js";

export const CALLBACK_PATHS = ["/api/srs/callback", "/api/v1/streams"] as const;
const BODY_LIMIT = 64 * 1024;

export interface CallbackRouteDeps {
  receiver: CallbackReceiver;
  log: Logger;
}

export async function registerCallbackRoutes(app: FastifyInstance, deps: CallbackRouteDeps): Promise<void> {
  const { receiver, log } = deps;
  await app.register(async (scope) => {
    // Every body is read as text, whatever its Content-Type says: SRS has been seen sending
    // "application-json", which fastify would refuse as malformed before any parser ran.
    const original = new WeakMap<FastifyRequest, string | undefined>();
    scope.addHook("onRequest", async (request) => {
      original.set(request, request.headers["content-type"]);
      request.headers["content-type"] = "text/plain";
    });
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "string", bodyLimit: BODY_LIMIT }, (_req, body, done) => done(null, body));
    const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      const text = typeof request.body === "string" ? request.body : "";
      const dialect = dialectOf(original.get(request), text);
      const denied = receiver.checkSecret(request.query);
      if (denied !== undefined) {
        log.warn({ callback: dialect, ip: request.ip, reason: denied }, "callback refused");
        return sendError(reply, 403, "forbidden");
      }
      const outcome = await receiver.handle(dialect, text, request.ip);
      if (dialect === "nginx-rtmp") {
        // nginx-rtmp: any 2xx allows, 4xx/5xx refuses; the body is only for people reading logs.
        return reply
          .code(outcome.allow ? 200 : 403)
          .type("text/plain; charset=utf-8")
          .send(outcome.allow ? "ok" : `refused: ${outcome.reason ?? "invalid"}`);
      }
      // SRS: HTTP 200 and an integer, 0 = allow.
      return reply.code(200).type("text/plain; charset=utf-8").send(String(outcome.code));
    };
    for (const p of CALLBACK_PATHS) scope.post(p, { schema: SCHEMAS.srsCallback, attachValidation: true }, handler);
  });
}
