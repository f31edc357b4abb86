import type { FastifyReply, FastifyRequest } from "fastify";
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { Redis } from "ioredis";
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

/** Requests another node of the cluster sent, proven by CLUSTER_SECRET (src/http/cluster.ts marks them). */
const clusterPeers = new WeakSet<FastifyRequest>();

export function markClusterPeer(request: FastifyRequest): void {
  clusterPeers.add(request);
}

export function isClusterPeer(request: FastifyRequest): boolean {
  return clusterPeers.has(request);
}

/** Room name check then authorization; returns false after replying when the request must stop. */
export function admitRoom(auth: Authorizer, request: FastifyRequest, reply: FastifyReply, room: string, action: Action): boolean {
  if (!ROOM_NAME_RE.test(room)) {
    sendError(reply, 400, "invalid room name");
    return false;
  }
  // Another node pulling for its viewers: it authorised them itself.
  if (isClusterPeer(request)) return true;
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
 * Per-client-IP limit with rate-limiter-flexible's BurstyRateLimiter: a steady RPS per second,
 * and beyond it a reserve that makes BURST requests at once possible and refills at RPS (over
 * (BURST - RPS) / RPS seconds). A client over the limit waits until the next second, not until a
 * whole window has passed. With a cluster both buckets live in Redis, shared by every node, and
 * fall back to per-node memory buckets while Redis is away (never a 500).
 */
export interface RateLimit {
  /** onRequest hook: 429 + Retry-After once the client's bucket is empty. */
  hook(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  /** Takes one point for an address; resolves with the Retry-After seconds when it is over the limit. */
  take(ip: string): Promise<string | undefined>;
}

export function createRateLimit(rps: number, burst: number, redis?: Redis): RateLimit {
  // The steady part: whole points per whole seconds (0.5 rps = 1 point per 2 s).
  const steadyDuration = rps >= 1 ? 1 : Math.round(1 / rps);
  const steadyPoints = rps >= 1 ? Math.floor(rps) : 1;
  const reservePoints = Math.max(0, burst - steadyPoints);
  const reserveDuration = Math.max(1, Math.ceil(reservePoints / rps));
  const limiter = (keyPrefix: string, points: number, duration: number) => {
    const memory = new RateLimiterMemory({ keyPrefix, points, duration });
    if (!redis) return memory;
    return new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `whipsfu:rl:${keyPrefix}`,
      points,
      duration,
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory,
    });
  };
  const steady = limiter("steady", steadyPoints, steadyDuration);
  const limiterOrBursty = reservePoints > 0 ? new BurstyRateLimiter(steady, limiter("reserve", reservePoints, reserveDuration)) : steady;
  const take = async (ip: string): Promise<string | undefined> => {
    try {
      await limiterOrBursty.consume(ip);
      return undefined;
    } catch (res) {
      if (res instanceof RateLimiterRes) return String(Math.max(1, Math.ceil(res.msBeforeNext / 1000)));
      throw res;
    }
  };
  return {
    take,
    hook: async (request, reply) => {
      // The node that forwarded it counted it already.
      if (isClusterPeer(request)) return;
      const retryAfter = await take(request.ip);
      if (retryAfter === undefined) return;
      reply.header("Retry-After", retryAfter);
      await sendError(reply, 429, "too many requests");
    },
  };
}
