// The node registry: each node writes its hash (URL, draining, load, its rooms) every second with
// a 5 s expiry, so a node silent for 5 s is gone from every view; whoever lists the nodes removes
// dead ones from the set.
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { RoomInfo } from "../sfu/rooms.js";
import type { Logger } from "../logger.js";
import { keys, type Redis } from "./redis.js";

export const HEARTBEAT_MS = 1000;
export const NODE_TTL_MS = 5000;

/** One room as one node sees it. */
export interface NodeRoom {
  name: string;
  /** This node holds the room's lease (its publisher or ingest is here). */
  own: boolean;
  /** Viewers on this node (edge pulls from other nodes not counted). */
  viewers: number;
  /** The owner's room info. */
  info?: RoomInfo;
}

export interface NodeState {
  id: string;
  url: string;
  draining: boolean;
  viewers: number;
  /** Share of one core used by the process over the last second. */
  cpu: number;
  /** Event-loop delay p99 over the last second, ms. */
  loopP99Ms: number;
  rooms: NodeRoom[];
}

export interface LocalView {
  draining: boolean;
  rooms: NodeRoom[];
}

export class NodeRegistry {
  private readonly timer: NodeJS.Timeout;
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });
  private cpuAt = process.cpuUsage();
  private cpuTime = performance.now();
  private nudged: NodeJS.Timeout | undefined;
  /** The nodes seen alive at the last listing (for /metrics, which cannot wait on Redis). */
  lastAlive: NodeState[] = [];

  constructor(
    private readonly redis: Redis,
    readonly self: { id: string; url: string },
    private readonly local: () => LocalView,
    private readonly log: Logger,
  ) {
    this.loop.enable();
    this.timer = setInterval(() => void this.beat().catch(() => undefined), HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Writes this node's state now (after a change others should see without waiting a second). */
  nudge(): void {
    if (this.nudged) return;
    this.nudged = setTimeout(() => {
      this.nudged = undefined;
      void this.beat().catch(() => undefined);
    }, 20);
    this.nudged.unref();
  }

  async beat(): Promise<void> {
    const now = performance.now();
    const usage = process.cpuUsage(this.cpuAt);
    const elapsedMs = Math.max(1, now - this.cpuTime);
    const cpu = (usage.user + usage.system) / 1000 / elapsedMs;
    this.cpuAt = process.cpuUsage();
    this.cpuTime = now;
    const loopP99Ms = this.loop.percentile(99) / 1e6;
    this.loop.reset();
    const view = this.local();
    const key = keys.node(this.self.id);
    await this.redis
      .multi()
      .hset(key, {
        url: this.self.url,
        draining: view.draining ? "1" : "0",
        viewers: String(view.rooms.reduce((n, r) => n + r.viewers, 0)),
        cpu: cpu.toFixed(3),
        loop: loopP99Ms.toFixed(1),
        rooms: JSON.stringify(view.rooms),
      })
      .pexpire(key, NODE_TTL_MS)
      .sadd(keys.nodes, this.self.id)
      .exec();
  }

  /** Every live node, this one included. Throws when Redis is away. */
  async alive(): Promise<NodeState[]> {
    const ids = await this.redis.smembers(keys.nodes);
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(keys.node(id));
    const results = (await pipeline.exec()) ?? [];
    const out: NodeState[] = [];
    const dead: string[] = [];
    ids.forEach((id, i) => {
      const hash = results[i]?.[1] as Record<string, string> | undefined;
      if (!hash || hash.url === undefined) {
        dead.push(id);
        return;
      }
      let rooms: NodeRoom[] = [];
      try {
        rooms = JSON.parse(hash.rooms ?? "[]") as NodeRoom[];
      } catch {
        rooms = [];
      }
      out.push({
        id,
        url: hash.url,
        draining: hash.draining === "1",
        viewers: Number(hash.viewers ?? 0),
        cpu: Number(hash.cpu ?? 0),
        loopP99Ms: Number(hash.loop ?? 0),
        rooms,
      });
    });
    if (dead.length > 0) {
      this.log.info({ nodes: dead }, "cluster nodes gone (no heartbeat for 5 s)");
      await this.redis.srem(keys.nodes, ...dead).catch(() => undefined);
    }
    out.sort((a, b) => a.id.localeCompare(b.id));
    this.lastAlive = out;
    return out;
  }

  /** Leaves the registry at once (a clean stop), rather than after the 5 s expiry. */
  async leave(): Promise<void> {
    clearInterval(this.timer);
    if (this.nudged) clearTimeout(this.nudged);
    this.loop.disable();
    await this.redis
      .multi()
      .del(keys.node(this.self.id))
      .srem(keys.nodes, this.self.id)
      .exec()
      .catch(() => undefined);
  }

  close(): void {
    clearInterval(this.timer);
    if (this.nudged) clearTimeout(this.nudged);
    this.loop.disable();
  }
}
