// The one Redis connection of a node. Commands fail at once while Redis is away (no offline
// queue): every caller treats that as "directory unavailable" and carries on with what it has.
import { Redis } from "ioredis";
import type { Logger } from "../logger.js";

export type { Redis };

export function connectRedis(url: string, log: Logger, events: { up(): void; down(): void }): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    // Reconnect forever, at most a second apart: a node outlives any Redis outage.
    retryStrategy: (times) => Math.min(times * 200, 1000),
    lazyConnect: false,
  });
  let up = false;
  redis.on("ready", () => {
    if (up) return;
    up = true;
    log.info({ redis: redactedUrl(url) }, "cluster directory connected");
    events.up();
  });
  const lost = (): void => {
    if (!up) return;
    up = false;
    log.warn({ redis: redactedUrl(url) }, "cluster directory unreachable: serving local rooms only");
    events.down();
  };
  redis.on("close", lost);
  redis.on("end", lost);
  // Errors surface through the commands that fail; the event only keeps ioredis from logging them.
  redis.on("error", () => undefined);
  return redis;
}

function redactedUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}

/** Key names, in one place: every key of the cluster starts with `whipsfu:`. */
export const keys = {
  /** Set of node ids ever registered; dead ones are removed by whoever notices. */
  nodes: "whipsfu:nodes",
  /** Hash of one node: url, draining, load, its rooms; expires 5 s after its last heartbeat. */
  node: (id: string) => `whipsfu:node:${id}`,
  /** `{nodeId}:{epoch}` of the node owning the room (a lease). */
  owner: (room: string) => `whipsfu:room:${room}:owner`,
  /** Fencing epoch, incremented by each claim. */
  epoch: (room: string) => `whipsfu:room:${room}:epoch`,
  /** The owner's tracks (codecs), for edges, with the lease's expiry. */
  meta: (room: string) => `whipsfu:room:${room}:meta`,
  /** Hash edge node → the node it pulls from. */
  edges: (room: string) => `whipsfu:room:${room}:edges`,
  /** Hash `{kind}:{id}` → the spec of a job (/start-stream, relay task) that some node must run. */
  jobs: "whipsfu:jobs",
  /** The lease of the node running a job, as for rooms: owner, fencing epoch, meta. */
  jobOwner: (job: string) => `whipsfu:job:${job}:owner`,
  jobEpoch: (job: string) => `whipsfu:job:${job}:epoch`,
  jobMeta: (job: string) => `whipsfu:job:${job}:meta`,
  /** Rate-limit buckets. */
  limits: "whipsfu:rl",
};
