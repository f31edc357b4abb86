// Jobs that outlive their node: /start-stream jobs and relay tasks. Each job's spec is kept in
// Redis (one hash, field `{kind}:{id}`) and exactly one node runs it, under a fenced lease of the
// same scheme as rooms (leases.ts). Every node looks once a second for stored jobs whose lease
// is free (given up by a clean stop, lapsed) or held by a node gone from the registry (dead for
// 5 s), and claims them; the one winner starts the job through its kind's runner. A node that finds its lease taken stops its copy.
import { fail } from "../errors.js";
import type { Logger } from "../logger.js";
import { RoomLeases } from "./leases.js";
import { keys, type Redis } from "./redis.js";

export type JobKind = "stream" | "relay";

/** What a /start-stream job is stored as (a relay task is stored as its TaskRecord). */
export interface StreamJobSpec {
  rtmpUrl: string;
}

/** How a kind of job is run on this node. */
export interface JobRunner {
  /** Starts the job here from its stored spec; throws when it cannot. */
  start(id: string, spec: string): Promise<void>;
  /** Ends the copy running here (its lease is another node's now). */
  stop(id: string): Promise<void>;
}

const SCAN_MS = 1000;
/** A job that failed to start here is not tried here again for this long (another node may). */
const RETRY_MS = 10_000;

const nameOf = (kind: JobKind, id: string): string => `${kind}:${id}`;

export class ClusterJobs {
  private readonly leases: RoomLeases;
  private readonly runners = new Map<JobKind, JobRunner>();
  private readonly failedAt = new Map<string, number>();
  private readonly starting = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    nodeId: string,
    private readonly log: Logger,
    private readonly isUp: () => boolean,
  ) {
    this.leases = new RoomLeases(redis, nodeId, log, (name) => this.lost(name), {
      what: "job",
      owner: keys.jobOwner,
      epoch: keys.jobEpoch,
      meta: keys.jobMeta,
    });
    this.timer = setInterval(() => void this.scan(), SCAN_MS);
    this.timer.unref();
  }

  /** The runner of a kind; jobs of a kind without one are left to other nodes. */
  handle(kind: JobKind, runner: JobRunner): void {
    this.runners.set(kind, runner);
  }

  holds(kind: JobKind, id: string): boolean {
    return this.leases.holds(nameOf(kind, id));
  }

  /** Takes the job for this node: true when it is (now) this node's, false when another node runs it. Throws when Redis is away. */
  async claim(kind: JobKind, id: string): Promise<boolean> {
    const name = nameOf(kind, id);
    if (this.leases.holds(name)) return true;
    return this.leases.claim(name);
  }

  /**
   * The job is to be started, changed or stopped here: takes its lease unless this node holds it.
   * With `adopt`, a stored job nobody ran (its node just died) is started here first, so the
   * command finds it. Throws "capacity" when another node holds it or Redis is away.
   */
  async take(kind: JobKind, id: string, adopt = false): Promise<void> {
    const name = nameOf(kind, id);
    if (this.leases.holds(name)) return;
    let ok: boolean;
    try {
      ok = await this.leases.claim(name);
    } catch {
      throw fail("capacity", "cluster directory unavailable");
    }
    if (!ok) throw fail("capacity", "the job is being taken over by another node");
    if (adopt) await this.takeOver(name);
    if (!this.leases.holds(name)) throw fail("capacity", "the job could not be started on this node");
  }

  /** Stores the job's spec: what a node taking it over starts from. Throws when Redis is away. */
  async put(kind: JobKind, id: string, spec: string): Promise<void> {
    await this.redis.hset(keys.jobs, nameOf(kind, id), spec);
  }

  /** Forgets the job, spec and lease; true when a spec was stored. Throws when Redis is away. */
  async remove(kind: JobKind, id: string): Promise<boolean> {
    const name = nameOf(kind, id);
    this.leases.release(name);
    return (await this.redis.hdel(keys.jobs, name)) > 0;
  }

  /** Gives the lease up and keeps the spec: the job is free for any node. */
  release(kind: JobKind, id: string): void {
    this.leases.release(nameOf(kind, id));
  }

  /** The node running the job, or undefined. Throws when Redis is away. */
  owner(kind: JobKind, id: string): Promise<string | undefined> {
    return this.leases.owner(nameOf(kind, id));
  }

  /** Extends this node's leases (also after Redis lost its keys). */
  refreshAll(): Promise<void> {
    return this.leases.refreshAll();
  }

  private split(name: string): { kind: JobKind; id: string } {
    const colon = name.indexOf(":");
    return { kind: name.slice(0, colon) as JobKind, id: name.slice(colon + 1) };
  }

  private lost(name: string): void {
    const { kind, id } = this.split(name);
    this.runners
      .get(kind)
      ?.stop(id)
      .catch((err: Error) => this.log.warn({ job: name, err: err.message }, "job not stopped"));
  }

  /** Claims the stored jobs nobody holds and starts them here. */
  async scan(): Promise<void> {
    if (this.closed || !this.isUp()) return;
    const now = performance.now();
    // Free: nobody holds the lease, or its holder's node left the registry (5 s without heartbeat).
    const free: { name: string; held?: string; node?: string }[] = [];
    try {
      const names = (await this.redis.hkeys(keys.jobs)).filter(
        (n) => !this.leases.holds(n) && !this.starting.has(n) && this.runners.has(this.split(n).kind) && (this.failedAt.get(n) ?? -Infinity) + RETRY_MS <= now,
      );
      if (names.length === 0) return;
      const owners = await this.redis.mget(names.map((n) => keys.jobOwner(n)));
      const held = names.flatMap((name, i) => {
        const value = owners[i];
        if (value === null || value === undefined) {
          free.push({ name });
          return [];
        }
        return [{ name, held: value, node: value.slice(0, value.lastIndexOf(":")) }];
      });
      if (held.length > 0) {
        const pipeline = this.redis.pipeline();
        for (const h of held) pipeline.exists(keys.node(h.node));
        const alive = (await pipeline.exec()) ?? [];
        held.forEach((h, i) => {
          if (alive[i]?.[0] === null && alive[i]?.[1] === 0) free.push(h);
        });
      }
    } catch {
      return; // Redis away: whoever runs a job keeps it.
    }
    for (const job of free) {
      if (this.closed) return;
      let ok: boolean;
      try {
        ok = job.held === undefined ? await this.leases.claim(job.name) : await this.leases.claimFromDead(job.name, job.held, keys.node(job.node!));
      } catch {
        return;
      }
      if (ok) void this.takeOver(job.name).then((started) => started || this.leases.release(job.name));
    }
  }

  /** Starts a job whose lease this node just took; false when there was nothing to start. */
  private async takeOver(name: string): Promise<boolean> {
    const { kind, id } = this.split(name);
    const runner = this.runners.get(kind);
    const spec = await this.redis.hget(keys.jobs, name).catch(() => null);
    if (!runner || spec === null) return false;
    this.starting.add(name);
    try {
      await runner.start(id, spec);
      this.failedAt.delete(name);
      this.log.info({ job: name }, "job taken over");
      return true;
    } catch (err) {
      this.failedAt.set(name, performance.now());
      this.leases.release(name);
      this.log.warn({ job: name, err: (err as Error).message }, "job taken over but did not start here: left to the next try");
      return true;
    } finally {
      this.starting.delete(name);
    }
  }

  /** Gives every lease up: the jobs run on once another node takes them over. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.leases.close();
  }
}
