import type { Logger } from "../logger.js";
import { fail } from "../errors.js";
import { errors } from "./errors.js";
import { NoCandidatesError, type IceSettings } from "./peer.js";
import { Publisher } from "./publisher.js";
import { Room, type TrackConsumerFactory } from "./room.js";
import { parseSdp, SdpError, type ParsedSdp } from "./sdp.js";
import type { EndReason, Liveness } from "./session.js";
import type { LayerState } from "./simulcast.js";
import { Subscriber } from "./subscriber.js";
import { FanoutWorkers } from "./fanout-workers.js";
import { codecsOf, ContinuousSource, mismatchedTracks, type SourceRole } from "./continuity.js";
import { RtpSource, type RtpTrackSpec } from "./rtp-source.js";
import type { RoomSource } from "./types.js";

/** What happens to sessions, for callbacks and the like; called after the fact, never awaited. */
export interface RoomEvents {
  sessionEnded(kind: SessionKind, room: string, sessionId: string, reason: EndReason): void;
  /** A room's live source changed role (hot standby: failover, or back to the primary). */
  sourceSwitched?(room: string, to: SourceRole, reason: "failover" | "recovered" | "ended"): void;
}

/**
 * Rooms coordinated beyond this process (a cluster, src/cluster); absent on a single node. It may
 * refuse a room another node owns, and may host here a room published elsewhere.
 */
export interface RoomDirectory {
  /** Before a publisher or ingest takes the room; throws (a DomainError) when it may not. */
  claim(room: string): Promise<void>;
  /** A room claimed here now has its source (its tracks are known). */
  hosted(room: string, source: RoomSource): void;
  /** A room claimed here has ended, or never got its source. */
  release(room: string): void;
  /** Before a viewer joins a room not hosted here: a source pulling it from elsewhere, or undefined. */
  pull(room: string): Promise<RoomSource | undefined>;
}

export interface RoomsOptions {
  ice: IceSettings;
  liveness: Liveness;
  /** 0 = unlimited. */
  maxSubsPerRoom: number;
  /** 0 = unlimited. */
  maxRooms?: number;
  /** 0 = unlimited; publishers and subscribers together, including ones being set up. */
  maxSessions?: number;
  consumers: TrackConsumerFactory[];
  log: Logger;
  events?: RoomEvents;
  /** How subscribers' packets are sent (see Subscriber); "fast" by default. */
  forwardPath?: "native" | "fast" | "werift";
  /** Fan-out worker processes for the fast path; 0 (default) sends from this process. */
  forwardWorkers?: number;
  /** GOP cache size for WHIP publishers' video (0 = off: a joiner waits for the keyframe its PLI asks for). */
  gopCachePackets?: number;
  directory?: RoomDirectory;
  /** How long a WHIP room and its viewers wait for a new publisher after the last one ends (0, default: the room ends with it). */
  graceMs?: number;
  /** A live primary silent this long hands over to its backup (default 1000). */
  failoverMs?: number;
}

export type SessionKind = "whip" | "whep";

/** About 4 s of 2.5 Mbps video: enough for the GOPs FFmpeg ingests are told to use. */
const INGEST_GOP_CACHE_PACKETS = 1024;

export interface RoomInfo {
  name: string;
  hasPublisher: boolean;
  tracks: number;
  subscribers: number;
  codecs: string[];
  since: string;
  /** Simulcast publishers only: each layer (rid, bitrate, arriving) and the one forwarded. */
  layers?: LayerState[];
  /** WHIP rooms: the source forwarded now ("primary", "backup"; absent in the grace), whether a backup is attached, failovers so far. */
  source?: SourceRole;
  backup?: boolean;
  failovers?: number;
}

export interface SessionEntry {
  kind: SessionKind;
  room: Room;
  session: Publisher | Subscriber;
}

function layersOf(source: Room["publisher"]): { layers?: LayerState[] } {
  const layers = source?.tracks.find((t) => t.simulcast)?.simulcast?.layerStates;
  return layers && layers.length > 0 ? { layers } : {};
}

/** The continuity of a WHIP room (every WHIP room has one; ingest rooms do not). */
export function continuityOf(room: Room): ContinuousSource | undefined {
  return room.publisher instanceof ContinuousSource ? room.publisher : undefined;
}

function continuityInfo(room: Room): Pick<RoomInfo, "source" | "backup" | "failovers"> {
  const c = continuityOf(room);
  if (!c) return {};
  return { ...(c.live ? { source: c.live } : {}), backup: c.sourceOf("backup") !== undefined, failovers: c.failovers };
}

function parseOffer(text: string): ParsedSdp {
  try {
    return parseSdp(text);
  } catch (err) {
    if (err instanceof SdpError) throw errors.invalidSdp();
    throw err;
  }
}

export class Rooms {
  private readonly rooms = new Map<string, Room>();
  private readonly sessions = new Map<string, SessionEntry>();
  private closed = false;
  /** Sessions being set up (not yet in `sessions`), counted against maxSessions. */
  private pending = 0;
  /** Rooms hosted here for a directory that pulled them from elsewhere (no lease, no consumers). */
  private readonly pulled = new WeakSet<Room>();
  /** Requests refused for capacity, by limit, for /metrics. */
  readonly refused = { rooms: 0, sessions: 0, ports: 0 };
  /** Rooms waiting for a new publisher, with the timer that ends each. */
  private readonly grace = new Map<Room, NodeJS.Timeout>();
  /** Failovers of rooms that have ended, for /metrics (live rooms count their own). */
  private endedFailovers = 0;

  private checkRoomCapacity(): void {
    const maxRooms = this.opts.maxRooms ?? 0;
    if (maxRooms > 0 && this.rooms.size >= maxRooms) {
      this.refused.rooms++;
      throw errors.capacity("too many rooms");
    }
  }

  private checkSessionCapacity(): void {
    const max = this.opts.maxSessions ?? 0;
    if (max > 0 && this.sessions.size + this.pending >= max) {
      this.refused.sessions++;
      throw errors.capacity("too many sessions");
    }
  }

  /** An answer without candidates means the ICE port range (or the host's addresses) ran out. */
  private capacityOr(err: unknown): unknown {
    if (err instanceof NoCandidatesError) {
      this.refused.ports++;
      return errors.capacity("no free media port");
    }
    return err;
  }

  /** FORWARD_WORKERS > 0 with the fast path: the processes viewers' packets are sent from. */
  private readonly workers: FanoutWorkers | undefined;

  constructor(private readonly opts: RoomsOptions) {
    const count = opts.forwardWorkers ?? 0;
    this.workers = count > 0 && (opts.forwardPath ?? "fast") !== "werift" ? new FanoutWorkers(count, opts.log) : undefined;
  }

  /** The forwarding path viewers' packets take (FORWARD_PATH once resolved). */
  get forwardPath(): "native" | "fast" | "werift" {
    return this.opts.forwardPath ?? "fast";
  }

  /** Process ids of the fan-out workers taking viewers (none without FORWARD_WORKERS). */
  get workerPids(): number[] {
    return this.workers?.pids ?? [];
  }

  get(name: string): Room | undefined {
    return this.rooms.get(name);
  }

  all(): Room[] {
    return [...this.rooms.values()];
  }

  session(kind: SessionKind, id: string): SessionEntry | undefined {
    const entry = this.sessions.get(id);
    return entry && entry.kind === kind ? entry : undefined;
  }

  list(): RoomInfo[] {
    return this.all()
      .filter((r) => r.publisher !== undefined)
      .map((r) => ({
        name: r.name,
        hasPublisher: r.publisher !== undefined && !r.publisher.closed && (continuityOf(r)?.hasSource ?? true),
        tracks: r.publisher?.tracks.length ?? 0,
        subscribers: r.subscribers.size,
        codecs: r.publisher?.tracks.map((t) => t.codecName) ?? [],
        since: r.createdAt.toISOString(),
        ...layersOf(r.publisher),
        ...continuityInfo(r),
      }));
  }

  /** Switches from a primary to its backup, over the server's life, for /metrics. */
  get failovers(): number {
    return this.all().reduce((n, r) => n + (continuityOf(r)?.failovers ?? 0), this.endedFailovers);
  }

  /**
   * A WHIP publisher for a room: its primary (a conflict while one is attached) or, with role "backup",
   * its hot standby (a conflict while one is attached). A room in its grace, or fed by its backup alone,
   * takes a primary back on the same tracks, so its viewers carry on.
   */
  async publish(roomName: string, offerText: string, sessionId?: string, role: SourceRole = "primary"): Promise<{ session: Publisher; answer: string }> {
    const offer = parseOffer(offerText);
    if (this.closed) throw new Error("server is shutting down");
    const existing = this.rooms.get(roomName);
    if (existing) return this.join(existing, offer, role, sessionId);
    this.checkRoomCapacity();
    this.checkSessionCapacity();
    // Only a directory makes this wait: without one, nothing may run between the check above and
    // taking the room, or two publishers would both take it.
    if (this.opts.directory) await this.claim(roomName);
    const room = new Room(roomName);
    this.rooms.set(roomName, room);
    let created: { publisher: Publisher; answer: string };
    try {
      created = await this.createPublisher(offer, sessionId);
    } catch (err) {
      this.rooms.delete(roomName);
      this.opts.directory?.release(roomName);
      throw err;
    }
    const { publisher, answer } = created;
    const continuity = new ContinuousSource(publisher, {
      gopCachePackets: this.opts.gopCachePackets ?? 0,
      failoverMs: this.opts.failoverMs ?? 1000,
      listener: {
        activeChanged: (active) => room.events.emit({ type: active ? "active" : "inactive" }),
        switched: (to, why) => {
          this.opts.log.info({ room: roomName, source: to, reason: why }, "room source switched");
          this.opts.events?.sourceSwitched?.(roomName, to, why);
        },
      },
    });
    room.publisher = continuity;
    if (this.closed || room.isClosed) {
      await continuity.close("shutdown");
      await publisher.close("shutdown");
      throw new Error("server is shutting down");
    }
    this.startSource(room, continuity, publisher, role);
    room.attachConsumers(this.opts.consumers);
    this.opts.directory?.hosted(roomName, continuity);
    return { session: publisher, answer };
  }

  /** A WHIP peer for an offer, counted as a session being set up until it answers. */
  private async createPublisher(offer: ParsedSdp, sessionId: string | undefined): Promise<{ publisher: Publisher; answer: string }> {
    this.pending++;
    try {
      return await Publisher.create(offer, {
        ice: this.opts.ice,
        liveness: this.opts.liveness,
        id: sessionId,
        gopCachePackets: this.opts.gopCachePackets,
      });
    } catch (err) {
      throw this.capacityOr(err);
    } finally {
      this.pending--;
    }
  }

  /** A publisher joining a room that exists: a primary back in the grace, a backup, or a conflict. */
  private async join(room: Room, offer: ParsedSdp, role: SourceRole, sessionId?: string): Promise<{ session: Publisher; answer: string }> {
    const continuity = continuityOf(room);
    if (!continuity || room.isClosed) throw errors.publisherExists();
    // A publisher that went silent (an encoder that restarted, a network that dropped) is replaced
    // rather than waited for until its session times out.
    if (continuity.sourceOf(role) && !continuity.isSilent(role)) throw errors.publisherExists();
    this.checkSessionCapacity();
    const { publisher, answer } = await this.createPublisher(offer, sessionId);
    const refuse = async (err: unknown): Promise<never> => {
      await publisher.close("error");
      throw err;
    };
    if (this.closed) return refuse(new Error("server is shutting down"));
    const replaced = continuity.sourceOf(role);
    if (room.isClosed || this.rooms.get(room.name) !== room || (replaced && !continuity.isSilent(role))) return refuse(errors.publisherExists());
    const mismatched = mismatchedTracks(continuity.tracks, publisher);
    // A backup must be interchangeable with what the room sends; a new primary with other codecs starts the room's tracks over.
    if (mismatched.length > 0 && continuity.hasSourceOtherThan(replaced)) {
      return refuse(errors.unsupportedCodec(`the room sends ${codecsOf(continuity)}; this publisher offers ${codecsOf(publisher)}`));
    }
    if (replaced) {
      this.opts.log.info({ room: room.name, session: replaced.id, role }, "silent publisher replaced");
      // Out of the room first, so that its end starts no grace.
      continuity.detach(replaced);
    }
    if (mismatched.length > 0) await this.restartTracks(room, continuity, publisher);
    this.startSource(room, continuity, publisher, role);
    if (mismatched.length > 0) {
      room.attachConsumers(this.opts.consumers);
      this.opts.directory?.hosted(room.name, continuity);
    }
    if (replaced) void replaced.close("timeout");
    return { session: publisher, answer };
  }

  /**
   * A new publisher of other codecs, in the grace: every viewer is told to reconnect (their
   * negotiation cannot carry the new codecs) and ended, recorders and bridges finish their part,
   * and the room's tracks are made anew from the publisher.
   */
  private async restartTracks(room: Room, continuity: ContinuousSource, publisher: Publisher): Promise<void> {
    this.opts.log.info({ room: room.name, from: codecsOf(continuity), to: codecsOf(publisher) }, "room codecs changed");
    const viewers = [...room.subscribers.values()];
    for (const v of viewers) room.events.emit({ type: "reconnect", session: v.id });
    await Promise.all(viewers.map((v) => v.close("publisher-left")));
    await room.closeConsumers();
    continuity.rebuild(publisher);
  }

  /** Feeds a room from a publisher and decides what its end means for the room. */
  private startSource(room: Room, continuity: ContinuousSource, publisher: Publisher, role: SourceRole): void {
    const timer = this.grace.get(room);
    if (timer) clearTimeout(timer);
    this.grace.delete(room);
    continuity.attach(publisher, role);
    this.sessions.set(publisher.id, { kind: "whip", room, session: publisher });
    publisher.onEnd((reason) => {
      this.sessions.delete(publisher.id);
      this.opts.log.info({ room: room.name, session: publisher.id, role, reason }, "publisher ended");
      this.opts.events?.sessionEnded("whip", room.name, publisher.id, reason);
      continuity.detach(publisher);
      if (room.isClosed || continuity.hasSource) return;
      const graceMs = this.opts.graceMs ?? 0;
      if (graceMs <= 0 || reason === "admin-close" || reason === "shutdown") {
        void this.endRoom(room, reason);
        return;
      }
      this.opts.log.info({ room: room.name, graceMs }, "room waiting for its publisher");
      const t = setTimeout(() => void this.endRoom(room, reason), graceMs);
      t.unref();
      this.grace.set(room, t);
    });
    this.opts.log.info({ room: room.name, session: publisher.id, role, tracks: publisher.tracks.map((t) => `${t.kind}:${t.codecName}`) }, "publisher joined");
  }

  async subscribe(roomName: string, offerText: string, sessionId?: string): Promise<{ session: Subscriber; answer: string }> {
    const offer = parseOffer(offerText);
    const room = this.rooms.get(roomName) ?? (await this.pull(roomName));
    const publisher = room?.publisher;
    if (!room || !publisher || publisher.closed) throw errors.noPublisher();
    const max = this.opts.maxSubsPerRoom;
    if (max > 0 && room.subscribers.size + room.pendingSubscribers >= max) throw errors.subscriberLimit();
    this.checkSessionCapacity();
    room.pendingSubscribers++;
    this.pending++;
    let created: { subscriber: Subscriber; answer: string };
    try {
      created = await Subscriber.create(offer, publisher, {
        ice: this.opts.ice,
        liveness: this.opts.liveness,
        id: sessionId,
        forwardPath: this.opts.forwardPath,
        workers: this.workers,
      });
    } catch (err) {
      throw this.capacityOr(err);
    } finally {
      room.pendingSubscribers--;
      this.pending--;
    }
    const { subscriber, answer } = created;
    if (room.isClosed) {
      await subscriber.close("publisher-left");
      throw errors.noPublisher();
    }
    room.subscribers.set(subscriber.id, subscriber);
    this.sessions.set(subscriber.id, { kind: "whep", room, session: subscriber });
    subscriber.onEnd((reason) => {
      room.subscribers.delete(subscriber.id);
      this.sessions.delete(subscriber.id);
      if (!room.isClosed) room.events.emit({ type: "viewercount", viewercount: room.subscribers.size });
      this.opts.log.info({ room: roomName, session: subscriber.id, reason }, "subscriber ended");
      this.opts.events?.sessionEnded("whep", roomName, subscriber.id, reason);
    });
    room.events.emit({ type: "viewercount", viewercount: room.subscribers.size });
    this.opts.log.info({ room: roomName, session: subscriber.id }, "subscriber joined");
    return { session: subscriber, answer };
  }

  /**
   * A room fed by plain RTP on loopback (an ingest): a conflict when the room already has a publisher.
   * The returned source's ports are where the RTP must go; closing it ends the room.
   */
  async ingest(roomName: string, tracks: RtpTrackSpec[]): Promise<RtpSource> {
    if (this.closed) throw fail("shutting_down", "server is shutting down");
    if (this.rooms.has(roomName)) throw errors.publisherExists();
    this.checkRoomCapacity();
    await this.claim(roomName);
    const room = new Room(roomName);
    this.rooms.set(roomName, room);
    let source: RtpSource;
    try {
      // An ingest's encoder cannot be asked for a keyframe, so its rooms always keep the last GOP.
      source = await RtpSource.open(tracks, INGEST_GOP_CACHE_PACKETS);
    } catch (err) {
      this.rooms.delete(roomName);
      this.opts.directory?.release(roomName);
      throw err;
    }
    room.publisher = source;
    source.onEnd((reason) => {
      this.opts.log.info({ room: roomName, source: source.id, reason }, "ingest ended");
      void this.endRoom(room, reason);
    });
    room.attachConsumers(this.opts.consumers);
    this.opts.directory?.hosted(roomName, source);
    this.opts.log.info({ room: roomName, source: source.id, tracks: source.tracks.map((t) => `${t.kind}:${t.codecName}`) }, "ingest joined");
    return source;
  }

  /** DELETE of a session resource: false when there is no such session. */
  async endSession(kind: SessionKind, id: string): Promise<boolean> {
    const entry = this.session(kind, id);
    if (!entry) return false;
    await entry.session.close("delete");
    // A room that carries on (in its grace, or fed by its other source) is not this session's to end.
    if (kind === "whip" && this.rooms.get(entry.room.name) !== entry.room) await entry.room.close("delete");
    return true;
  }

  async closeRoom(name: string, reason: EndReason): Promise<boolean> {
    const room = this.rooms.get(name);
    if (!room) return false;
    await this.endRoom(room, reason);
    return true;
  }

  /** True for a room hosted here as a copy of one another node owns. */
  isPulled(room: Room): boolean {
    return this.pulled.has(room);
  }

  /** Asks the directory for the room; a second claim in the meantime (the directory wins the race) re-checks. */
  private async claim(roomName: string): Promise<void> {
    const directory = this.opts.directory;
    if (!directory) return;
    await directory.claim(roomName);
    if (this.closed || this.rooms.has(roomName)) {
      directory.release(roomName);
      throw this.closed ? new Error("server is shutting down") : errors.publisherExists();
    }
  }

  /** A room published on another node, hosted here from the source the directory pulls (once per room). */
  private async pull(roomName: string): Promise<Room | undefined> {
    if (!this.opts.directory || this.closed) return undefined;
    const source = await this.opts.directory.pull(roomName);
    if (!source || source.closed) return this.rooms.get(roomName);
    const existing = this.rooms.get(roomName);
    if (existing) return existing;
    const room = new Room(roomName);
    room.publisher = source;
    this.rooms.set(roomName, room);
    this.pulled.add(room);
    source.onEnd((reason) => void this.endRoom(room, reason));
    this.opts.log.info({ room: roomName, source: source.id }, "room pulled from its owner");
    return room;
  }

  private async endRoom(room: Room, reason: EndReason): Promise<void> {
    if (this.rooms.get(room.name) === room) {
      this.rooms.delete(room.name);
      if (!this.pulled.has(room)) this.opts.directory?.release(room.name);
    }
    const timer = this.grace.get(room);
    if (timer) clearTimeout(timer);
    this.grace.delete(room);
    if (!room.isClosed) this.endedFailovers += continuityOf(room)?.failovers ?? 0;
    if (!room.isClosed) this.opts.log.info({ room: room.name, reason }, "room closed");
    await room.close(reason);
  }

  /** Ends every room (recordings are finalised by their consumers' close), then the fan-out workers. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    // Viewers are told to come back (to this server once it is up again, or another behind the same URL).
    for (const r of this.all()) if (!r.isClosed) r.events.emit({ type: "reconnect" });
    await Promise.all(this.all().map((r) => this.endRoom(r, "shutdown")));
    await this.workers?.close();
  }
}
