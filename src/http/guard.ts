import type { FastifyReply, FastifyRequest } from "fastify";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { extractToken, type Action, type Authorizer } from "../auth/auth.js";
import { ROOM_NAME_RE } from "../config.js";
import { sendError } from "./errors.js";

export function tokenOf(request: FastifyRequest, allowQuery = false): string | undefined {
  return extractToken(request.headers, request.query as Record<string, unknown> | undefined, allowQuery);
}

export function unauthorized(reply: FastifyReply): FastifyReply {
  reply.header("WWW-Authenticate", 'Bearer realm="whip-whep"');
  return sendError(reply, 401, "unauthorized");
}

/** Room name check then authorization; returns false after replying when the request must stop. */
export function admitRoom(auth: Authorizer, request: FastifyRequest, reply: FastifyReply, room: string, action: Action): boolean {
  if (!ROOM_NAME_RE.test(room)) {
    sendError(reply, 400, "invalid room name");
    return false;
  }
  if (!auth.allows(tokenOf(request), room, action)) {
    unauthorized(reply);
    return false;
  }
  return true;
}

/** Managing a room's bridges (HLS, restreams, ingest): publish rights for the room, or admin rights. */
export function admitRoomManager(auth: Authorizer, request: FastifyRequest, reply: FastifyReply, room: string): boolean {
  if (!ROOM_NAME_RE.test(room)) {
    sendError(reply, 400, "invalid room name");
    return false;
  }
  const token = tokenOf(request);
  if (!auth.allows(token, room, "publish") && !auth.allowsAdmin(token, room)) {
    unauthorized(reply);
    return false;
  }
  return true;
}

/**
 * Per-client-IP limit with rate-limiter-flexible: BURST requests per BURST/RPS seconds, i.e. a
 * bucket of BURST refilled at RPS on average.
 */
export interface RateLimit {
  /** onRequest hook: 429 + Retry-After once the client's bucket is empty. */
  hook(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  /** Takes one point for an address; resolves with the Retry-After seconds when it is over the limit. */
  take(ip: string): Promise<string | undefined>;
}

export function createRateLimit(rps: number, burst: number): RateLimit {
  const limiter = new RateLimiterMemory({ points: burst, duration: Math.max(1, Math.ceil(burst / rps)) });
  const take = async (ip: string): Promise<string | undefined> => {
    try {
      await limiter.consume(ip);
      return undefined;
    } catch (res) {
      if (res instanceof RateLimiterRes) return String(Math.max(1, Math.ceil(res.msBeforeNext / 1000)));
      throw res;
    }
  };
  return {
    take,
    hook: async (request, reply) => {
      const retryAfter = await take(request.ip);
      if (retryAfter === undefined) return;
      reply.header("Retry-After", retryAfter);
      await sendError(reply, 429, "too many requests");
    },
  };
}
