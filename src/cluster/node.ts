// This node's part in a cluster: its registry entry, the leases of the rooms published here, the
// pulls of rooms published elsewhere, and the cluster-wide views the HTTP routes answer with.
// Rooms sees it only as a RoomDirectory (src/sfu/rooms.ts); nothing here knows about HTTP.
import type { ClusterConfig } from "../config.js";
import { fail } from "../errors.js";
import type { Logger } from "../logger.js";
import { errors } from "../sfu/errors.js";
import type { IceSettings } from "../sfu/peer.js";
import type { RoomDirectory, RoomInfo, Rooms } from "../sfu/rooms.js";
import { newSessionId, type Liveness } from "../sfu/session.js";
import type { RoomSource } from "../sfu/types.js";
import { EdgeSource, type TrackSpec } from "./edge-source.js";
import { ClusterJobs } from "./jobs.js";
import { LEASE_MS, RoomLeases } from "./leases.js";
import { connectRedis, keys, type Redis } from "./redis.js";
import { NodeRegistry, type NodeRoom, type NodeState } from "./registry.js";

/** A pull with no local viewer ends after this long. */
export const EDGE_IDLE_MS = 5000;
/** How long a pull may take to connect before it is tried again. */
const PULL_CONNECT_TIMEOUT_MS = 8000;
const TICK_MS = 1000;

/** A room as /api/rooms shows it on any node of a cluster. */
export interface ClusterRoomInfo extends RoomInfo {
  /** The node holding the room's lease (its publisher). */
  owner: string;
  /** Viewers per node, edges included; `subscribers` is their sum. */
  viewers: Record<string, number>;
}

export type Health = "ok" | "degraded";

const unavailable = () => fail("capacity", "cluster directory unavailable");

interface Pull {
  source: EdgeSource;
  upstream: string;
  idleSince?: number;
}

export class ClusterNode implements RoomDirectory {
  readonly id: string;
  readonly url: string;
  readonly secret: string;
  private readonly redis: Redis;
  private readonly leases: RoomLeases;
  readonly registry: NodeRegistry;
  /** /start-stream jobs and relay tasks, run by one node each and taken over when it dies. */
  readonly jobs: ClusterJobs;
  private rooms: Rooms | undefined;
  private readonly opening = new Map<string, Promise<EdgeSource | undefined>>();
  private readonly pulls = new Map<string, Pull>();
  /** WHEP sessions here that are other nodes' pulls: not viewers, and counted as edges. */
  private readonly edgeSessions = new Map<string, { room: string; node: string }>();
  private readonly timer: NodeJS.Timeout;
  private up = false;
  private closed = false;
  draining = false;
  /** Pulls opened since start, for /metrics. */
  pullsOpened = 0;

  constructor(
    private readonly config: ClusterConfig,
    private readonly media: { ice: IceSettings; liveness: Liveness },
    private readonly log: Logger,
  ) {
    this.id = config.nodeId;
    this.url = config.advertiseUrl;
    this.secret = config.secret;
    this.redis = connectRedis(config.redisUrl, log, { up: () => this.onUp(), down: () => (this.up = false) });
    this.leases = new RoomLeases(this.redis, this.id, log, (room) => void this.rooms?.closeRoom(room, "error"));
    this.jobs = new ClusterJobs(this.redis, this.id, log, () => this.up && !this.draining && !this.closed);
    this.registry = new NodeRegistry(this.redis, { id: this.id, url: this.url }, () => this.localView(), log);
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** The connection shared rate limits use. */
  get redisClient(): Redis {
    return this.redis;
  }

  /** Rooms is built with this node as its directory; it is handed back here once built. */
  bind(rooms: Rooms): void {
    this.rooms = rooms;
  }

  get health(): Health {
    return this.up ? "ok" : "degraded";
  }

  /** Session ids name their node, so a request for them can be sent on from any node. */
  sessionId(): string {
    return `${this.id}.${newSessionId()}`;
  }

  /** The node a session id names, or undefined for an id of no cluster form. */
  static nodeOfSession(id: string): string | undefined {
    const dot = id.indexOf(".");
    return dot > 0 ? id.slice(0, dot) : undefined;
  }

  private onUp(): void {
    this.up = true;
    // Back after an outage (or a Redis restart that lost every key): re-register, re-take leases.
    void this.registry.beat().catch(() => undefined);
    void this.leases.refreshAll();
    void this.jobs.refreshAll();
  }

  // ---- RoomDirectory ----------------------------------------------------------------------------

  async claim(room: string): Promise<void> {
    if (this.draining) throw fail("shutting_down", "node is draining");
    if (!this.up) throw unavailable();
    let ok: boolean;
    try {
      ok = await this.leases.claim(room);
    } catch {
      throw unavailable();
    }
    if (!ok) throw errors.publisherExists();
  }

  hosted(room: string, source: RoomSource): void {
    const tracks: TrackSpec[] = source.tracks.map((t) => ({ kind: t.kind, codec: t.codec }));
    this.leases.setMeta(room, JSON.stringify({ tracks }));
    this.registry.nudge();
  }

  release(room: string): void {
    this.leases.release(room);
    this.registry.nudge();
  }

  pull(room: string): Promise<RoomSource | undefined> {
    let opening = this.opening.get(room);
    if (!opening) {
      opening = this.openPull(room).finally(() => this.opening.delete(room));
      this.opening.set(room, opening);
    }
    return opening;
  }

  private async openPull(room: string): Promise<EdgeSource | undefined> {
    if (this.closed) return undefined;
    const existing = this.pulls.get(room);
    if (existing && !existing.source.closed) return existing.source;
    if (!this.up) throw unavailable();
    let owner: string | undefined;
    let meta: string | undefined;
    let nodes: NodeState[];
    let edges: Record<string, string>;
    try {
      [owner, meta, nodes, edges] = await Promise.all([
        this.leases.owner(room),
        this.leases.meta(room),
        this.registry.alive(),
        this.redis.hgetall(keys.edges(room)),
      ]);
    } catch {
      throw unavailable();
    }
    if (owner === undefined || owner === this.id || meta === undefined) return undefined;
    const ownerNode = nodes.find((n) => n.id === owner);
    if (!ownerNode) return undefined;
    let tracks: TrackSpec[];
    try {
      tracks = (JSON.parse(meta) as { tracks: TrackSpec[] }).tracks;
    } catch {
      return undefined;
    }
    if (!Array.isArray(tracks) || tracks.length === 0) return undefined;
    // Past the cap of direct edges, pull from the least loaded direct edge (a two-level tree).
    const alive = new Map(nodes.map((n) => [n.id, n]));
    const direct = Object.entries(edges)
      .filter(([edge, upstream]) => upstream === owner && edge !== this.id && alive.has(edge) && !alive.get(edge)!.draining)
      .map(([edge]) => alive.get(edge)!);
    const candidates: NodeState[] = [];
    if (direct.length >= this.config.maxDirectEdges) candidates.push(...direct.sort((a, b) => a.viewers - b.viewers).slice(0, 1));
    candidates.push(ownerNode);
    let lastError: unknown;
    // Viewers are attached only to a pull that is up; one that fails to connect is tried again.
    for (const upstream of [...candidates, ownerNode]) {
      let source: EdgeSource | undefined;
      try {
        source = await EdgeSource.open({
          upstream: upstream.url,
          room,
          tracks,
          secret: this.secret,
          nodeId: this.id,
          ice: this.media.ice,
          liveness: this.media.liveness,
        });
        await source.waitConnected(PULL_CONNECT_TIMEOUT_MS);
        this.adopt(room, source, upstream.id);
        return source;
      } catch (err) {
        void source?.close("error");
        lastError = err;
        this.log.warn({ room, upstream: upstream.id, err: (err as Error).message }, "pull from upstream failed");
      }
    }
    throw fail("capacity", "room could not be pulled from its owner", { cause: lastError });
  }

  private adopt(room: string, source: EdgeSource, upstream: string): void {
    this.pullsOpened++;
    const pull: Pull = { source, upstream };
    this.pulls.set(room, pull);
    this.log.info({ room, upstream }, "pulling room");
    this.redis
      .multi()
      .hset(keys.edges(room), this.id, upstream)
      .pexpire(keys.edges(room), LEASE_MS)
      .exec()
      .catch(() => undefined);
    source.onEnd((reason) => {
      if (this.pulls.get(room) === pull) this.pulls.delete(room);
      this.log.info({ room, upstream, reason }, "pull ended");
      this.redis.hdel(keys.edges(room), this.id).catch(() => undefined);
      this.registry.nudge();
    });
    this.registry.nudge();
  }

  /** A WHEP session here was opened by another node's pull. */
  edgeSession(sessionId: string, room: string, node: string): void {
    this.edgeSessions.set(sessionId, { room, node });
    this.registry.nudge();
  }

  /** Pulls end once idle; pulls of rooms whose owner changed or vanished end; edge records stay fresh. */
  private async tick(): Promise<void> {
    const now = performance.now();
    for (const [name, pull] of this.pulls) {
      const viewers = this.rooms?.get(name)?.subscribers.size ?? 0;
      if (viewers > 0) pull.idleSince = undefined;
      else if ((pull.idleSince ??= now) + EDGE_IDLE_MS <= now) {
        void pull.source.close("timeout");
        continue;
      }
      if (!this.up) continue;
      try {
        const owner = await this.leases.owner(name);
        if (owner === undefined || owner === this.id) {
          void pull.source.close("publisher-left");
          continue;
        }
        await this.redis.multi().hset(keys.edges(name), this.id, pull.upstream).pexpire(keys.edges(name), LEASE_MS).exec();
      } catch {
        // Redis away: the pull goes on while the upstream sends.
      }
    }
    for (const [id] of this.edgeSessions) if (!this.rooms?.session("whep", id)) this.edgeSessions.delete(id);
  }

  // ---- views ------------------------------------------------------------------------------------

  /** Viewers of a room on this node, other nodes' pulls not counted. */
  private localViewers(room: string): number {
    const r = this.rooms?.get(room);
    if (!r) return 0;
    let edges = 0;
    for (const id of r.subscribers.keys()) if (this.edgeSessions.has(id)) edges++;
    return r.subscribers.size - edges;
  }

  private localView(): { draining: boolean; rooms: NodeRoom[] } {
    const infos = new Map((this.rooms?.list() ?? []).map((i) => [i.name, i]));
    const rooms: NodeRoom[] = [];
    for (const r of this.rooms?.all() ?? []) {
      const own = this.leases.holds(r.name);
      rooms.push({ name: r.name, own, viewers: this.localViewers(r.name), ...(own ? { info: infos.get(r.name) } : {}) });
    }
    return { draining: this.draining, rooms };
  }

  /** Live nodes (this one with its current state), or undefined while Redis is away. */
  async nodes(): Promise<NodeState[] | undefined> {
    if (!this.up) return undefined;
    try {
      const nodes = await this.registry.alive();
      const self = nodes.find((n) => n.id === this.id);
      if (self) Object.assign(self, this.localView());
      return nodes;
    } catch {
      return undefined;
    }
  }

  /** Every room of the cluster with its owner and viewers per node; this node's alone while Redis is away. */
  async listRooms(): Promise<ClusterRoomInfo[]> {
    const nodes = (await this.nodes()) ?? [{ id: this.id, url: this.url, viewers: 0, cpu: 0, loopP99Ms: 0, ...this.localView() }];
    const out = new Map<string, ClusterRoomInfo>();
    for (const n of nodes) {
      for (const r of n.rooms) {
        if (!r.own || !r.info) continue;
        out.set(r.name, { ...r.info, owner: n.id, viewers: {}, subscribers: 0 });
      }
    }
    for (const n of nodes) {
      for (const r of n.rooms) {
        const room = out.get(r.name);
        if (!room || r.viewers === 0) continue;
        room.viewers[n.id] = (room.viewers[n.id] ?? 0) + r.viewers;
        room.subscribers += r.viewers;
      }
    }
    return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Viewers of a room over every node (remote counts up to a heartbeat old). */
  async totalViewers(room: string): Promise<number> {
    const nodes = await this.nodes();
    if (!nodes) return this.localViewers(room);
    let total = 0;
    for (const n of nodes) for (const r of n.rooms) if (r.name === room) total += r.viewers;
    return total;
  }

  /** Whether this node owns the room (its publisher is here). */
  owns(room: string): boolean {
    return this.leases.holds(room);
  }

  /** The base URL of the node owning a room, when that is another live node. */
  async ownerUrl(room: string): Promise<string | undefined> {
    const nodes = await this.nodes();
    if (!nodes) return undefined;
    const owner = await this.leases.owner(room).catch(() => undefined);
    if (owner === undefined || owner === this.id) return undefined;
    return nodes.find((n) => n.id === owner)?.url;
  }

  /** The base URL of a live node by id (not this one). */
  async nodeUrl(id: string): Promise<string | undefined> {
    if (id === this.id) return undefined;
    return (await this.nodes())?.find((n) => n.id === id)?.url;
  }

  /** A live node that takes new sessions (not this one, not draining): the least loaded. */
  async takeover(): Promise<string | undefined> {
    const nodes = (await this.nodes()) ?? [];
    return nodes.filter((n) => n.id !== this.id && !n.draining).sort((a, b) => a.viewers - b.viewers || a.cpu - b.cpu)[0]?.url;
  }

  /** Rooms this node pulls, and edges pulling from it, for /metrics. */
  get pullCount(): number {
    return this.pulls.size;
  }

  get edgeSessionCount(): number {
    return this.edgeSessions.size;
  }

  // ---- drain ------------------------------------------------------------------------------------

  /**
   * Takes no new sessions from now on (the HTTP layer sends them elsewhere); viewers are told to
   * reconnect (WHEP events) and closed after `graceMs` (players reconnect through the balancer to
   * another node); publishers stay
   * until they leave or `maxMs` is up. Resolves when nothing is left or the time is up.
   */
  async drain(maxMs: number, graceMs = Math.min(5000, maxMs)): Promise<void> {
    this.draining = true;
    await this.registry.beat().catch(() => undefined);
    this.log.info({ seconds: maxMs / 1000 }, "draining: new sessions go to other nodes");
    const rooms = this.rooms;
    if (!rooms) return;
    const started = performance.now();
    // Players that follow the WHEP events move at once (the `reconnect` event); the rest are
    // closed after the grace.
    for (const room of rooms.all()) {
      for (const id of room.subscribers.keys()) if (!this.edgeSessions.has(id)) room.events.emit({ type: "reconnect", session: id });
    }
    await sleep(graceMs);
    for (const room of rooms.all()) {
      for (const [id, sub] of room.subscribers) if (!this.edgeSessions.has(id)) void sub.close("shutdown");
    }
    while (performance.now() - started < maxMs && rooms.all().some((r) => !rooms.isPulled(r))) await sleep(250);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all([...this.pulls.values()].map((p) => p.source.close("shutdown")));
    this.leases.close();
    this.jobs.close();
    await this.registry.leave();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
