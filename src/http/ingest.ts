// Routes of room ingest (docs/bridges.md, "Ingest"): POST/GET/DELETE /api/rooms/{room}/ingest. Publish rights
// for the room, or admin rights, are needed for all three.

import type { FastifyInstance } from "fastify";
import type { Authorizer } from "../auth/auth.js";
import type { Ingests } from "../bridges/ingest.js";
import { isDomainError } from "../errors.js";
import { sendDomainError, sendError } from "./errors.js";
import { admitRoomManager } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

declare module "fastify" {
  interface FastifyInstance {
    /** Sources pulled into rooms by FFmpeg. */
    ingests: Ingests;
  }
}

export interface IngestRouteDeps {
  auth: Authorizer;
  ingests: Ingests;
}

/** The body's `url` and `loop`, or the reason it is not acceptable. */
export function parseIngestBody(body: unknown): { url: unknown; loop: boolean } | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return 'body must be a JSON object: {"url": "…", "loop": false}';
  const b = body as Record<string, unknown>;
  if (typeof b.url !== "string" || b.url === "") return '"url" is required and must be a string';
  if (b.loop !== undefined && typeof b.loop !== "boolean") return '"loop" must be true or false';
  return { url: b.url, loop: b.loop === true };
}

export function registerIngestRoutes(app: FastifyInstance, deps: IngestRouteDeps): void {
  const { auth, ingests } = deps;
  app.decorate("ingests", ingests);

  app.post<{ Params: { room: string } }>("/api/rooms/:room/ingest", { schema: SCHEMAS.ingestStart, attachValidation: true }, async (request, reply) => {
    const { room } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    const body = parseIngestBody(request.body);
    if (typeof body === "string") return sendError(reply, 400, body);
    try {
      const info = await ingests.start(room, body.url, { loop: body.loop, origin: "api" });
      return reply.code(201).send(info);
    } catch (err) {
      if (isDomainError(err)) return sendDomainError(reply, err);
      throw err;
    }
  });

  app.get<{ Params: { room: string } }>("/api/rooms/:room/ingest", { schema: SCHEMAS.ingestInfo }, async (request, reply) => {
    const { room } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    const info = ingests.get(room);
    if (!info) return sendError(reply, 404, "no ingest in this room");
    return info;
  });

  app.delete<{ Params: { room: string } }>("/api/rooms/:room/ingest", { schema: SCHEMAS.ingestStop }, async (request, reply) => {
    const { room } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    const info = await ingests.stop(room, { reason: "delete" });
    if (!info) return sendError(reply, 404, "no ingest in this room");
    return { stopped: info.id, room, state: info.state };
  });
}
