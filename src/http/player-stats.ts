// POST /api/whep/session/{id}/stats: a player's getStats() summary (docs/api.md, "Player
// statistics"). The session id is the capability; the report only feeds /metrics.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Authorizer } from "../auth/auth.js";
import type { PlayerQuality, PlayerReport } from "../sfu/player-quality.js";
import type { Rooms } from "../sfu/rooms.js";
import { Subscriber } from "../sfu/subscriber.js";
import { sendError } from "./errors.js";
import { tokenOf, unauthorized } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

export interface PlayerStatsRouteDeps {
  rooms: Rooms;
  auth: Authorizer;
  players: PlayerQuality;
}

/** Reports per session: this many in any window of as many seconds (one a second, a burst of 3). */
export const REPORTS_PER_WINDOW = 3;

const ALLOWED = "POST, OPTIONS";

export async function playerStatsRoutes(app: FastifyInstance, deps: PlayerStatsRouteDeps): Promise<void> {
  const { rooms, auth, players } = deps;
  // Keys are session ids and expire with their window: nothing of a session stays here.
  const limiter = new RateLimiterMemory({ points: REPORTS_PER_WINDOW, duration: REPORTS_PER_WINDOW });
  const path = "/api/whep/session/:id/stats";
  type Request = FastifyRequest<{ Params: { id: string }; Body: PlayerReport }>;

  /** Session, token and rate checks before the body is read: an unknown session is 404 whatever it sent. */
  const admit = async (request: Request, reply: FastifyReply): Promise<void> => {
    const entry = rooms.session("whep", request.params.id);
    if (!entry || !(entry.session instanceof Subscriber)) {
      await sendError(reply, 404, "session not found");
      return;
    }
    if (auth.enabled && !auth.allows(tokenOf(request), entry.room.name, "subscribe")) {
      await unauthorized(reply);
      return;
    }
    try {
      await limiter.consume(request.params.id);
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      reply.header("Retry-After", String(Math.max(1, Math.ceil(res.msBeforeNext / 1000))));
      await sendError(reply, 429, "too many requests");
    }
  };

  app.post<{ Params: { id: string }; Body: PlayerReport }>(path, { schema: SCHEMAS.playerStats, onRequest: admit }, async (request, reply) => {
    // The session may have ended while the body was read.
    const entry = rooms.session("whep", request.params.id);
    if (!entry || !(entry.session instanceof Subscriber)) return sendError(reply, 404, "session not found");
    players.report(entry.room, entry.session, request.body);
    return reply.code(204).send();
  });
  app.options(path, { schema: SCHEMAS.playerStatsOptions }, async (_request, reply) => {
    reply.header("Accept-Post", "application/json");
    return reply.code(204).send();
  });
  app.route({
    method: ["GET", "PUT", "PATCH", "DELETE", "HEAD"],
    url: path,
    schema: SCHEMAS.playerStatsNotAllowed,
    handler: async (_request, reply) => {
      reply.header("Allow", ALLOWED);
      return sendError(reply, 405, "method not allowed");
    },
  });
}
