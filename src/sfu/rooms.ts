import type { Logger } from "../logger.js";
import { errors } from "./errors.js";
import { NoCandidatesError, type IceSettings } from "./peer.js";
import { Publisher } from "./publisher.js";
import { Room, type TrackConsumerFactory } from "./room.js";
import { parseSdp, SdpError, type ParsedSdp } from "./sdp.js";
import type { EndReason, Liveness } from "./session.js";
import type { LayerState } from "./simulcast.js";
import { Subscriber } from "./subscriber.js";
import { FanoutWorkers } from "./fanout-workers.js";
import { RtpSource, type RtpTrackSpec } from "./rtp-source.js";

/** What happens to sessions, for callbacks and the like; called after the fact, never awaited. */
export interface RoomEvents {
  sessionEnded(kind: SessionKind, room: string, sessionId: string, reason: EndReason): void;
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
  /** Requests refused for capacity, by limit, for /metrics. */
  readonly refused = { rooms: 0, sessions: 0, ports: 0 };

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
        hasPublisher: r.publisher !== undefined && !r.publisher.closed,
        tracks: r.publisher?.tracks.length ?? 0,
        subscribers: r.subscribers.size,
        codecs: r.publisher?.tracks.map((t) => t.codecName) ?? [],
        since: r.createdAt.toISOString(),
        ...layersOf(r.publisher),
      }));
  }

  async publish(roomName: string, offerText: string, sessionId?: string): Promise<{ session: Publisher; answer: string }> {
    const offer = parseOffer(offerText);
    if (this.closed) throw new Error("server is shutting down");
    if (this.rooms.has(roomName)) throw errors.publisherExists();
    this.checkRoomCapacity();
    this.checkSessionCapacity();
    const room = new Room(roomName);
    this.rooms.set(roomName, room);
    let created: { publisher: Publisher; answer: string };
    this.pending++;
    try {
      created = await Publisher.create(offer, {
        ice: this.opts.ice,
        liveness: this.opts.liveness,
        id: sessionId,
        gopCachePackets: this.opts.gopCachePackets,
      });
    } catch (err) {
      this.rooms.delete(roomName);
      throw this.capacityOr(err);
    } finally {
      this.pending--;
    }
    const { publisher, answer } = created;
    room.publisher = publisher;
    if (this.closed || room.isClosed) {
      await publisher.close("shutdown");
      throw new Error("server is shutting down");
    }
    this.sessions.set(publisher.id, { kind: "whip", room, session: publisher });
    publisher.onEnd((reason) => {
      this.sessions.delete(publisher.id);
      this.opts.log.info({ room: roomName, session: publisher.id, reason }, "publisher ended");
      this.opts.events?.sessionEnded("whip", roomName, publisher.id, reason);
      void this.endRoom(room, reason);
    });
    room.attachConsumers(this.opts.consumers);
    this.opts.log.info(
      { room: roomName, session: publisher.id, tracks: publisher.tracks.map((t) => `${t.kind}:${t.codecName}`) },
      "publisher joined",
    );
    return { session: publisher, answer };
  }

  async subscribe(roomName: string, offerText: string, sessionId?: string): Promise<{ session: Subscriber; answer: string }> {
    const offer = parseOffer(offerText);
    const room = this.rooms.get(roomName);
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
      this.opts.log.info({ room: roomName, session: subscriber.id, reason }, "subscriber ended");
      this.opts.events?.sessionEnded("whep", roomName, subscriber.id, reason);
    });
    this.opts.log.info({ room: roomName, session: subscriber.id }, "subscriber joined");
    return { session: subscriber, answer };
  }

  /**
   * A room fed by plain RTP on loopback (an ingest): 409 when the room already has a publisher.
   * The returned source's ports are where the RTP must go; closing it ends the room.
   */
  async ingest(roomName: string, tracks: RtpTrackSpec[]): Promise<RtpSource> {
    if (this.closed) throw new Error("server is shutting down");
    if (this.rooms.has(roomName)) throw errors.publisherExists();
    this.checkRoomCapacity();
    const room = new Room(roomName);
    this.rooms.set(roomName, room);
    let source: RtpSource;
    try {
      // An ingest's encoder cannot be asked for a keyframe, so its rooms always keep the last GOP.
      source = await RtpSource.open(tracks, INGEST_GOP_CACHE_PACKETS);
    } catch (err) {
      this.rooms.delete(roomName);
      throw err;
    }
    room.publisher = source;
    source.onEnd((reason) => {
      this.opts.log.info({ room: roomName, source: source.id, reason }, "ingest ended");
      void this.endRoom(room, reason);
    });
    room.attachConsumers(this.opts.consumers);
    this.opts.log.info({ room: roomName, source: source.id, tracks: source.tracks.map((t) => `${t.kind}:${t.codecName}`) }, "ingest joined");
    return source;
  }

  /** DELETE of a session resource: false when there is no such session. */
  async endSession(kind: SessionKind, id: string): Promise<boolean> {
    const entry = this.session(kind, id);
    if (!entry) return false;
    await entry.session.close("delete");
    if (kind === "whip") await entry.room.close("delete");
    return true;
  }

  async closeRoom(name: string, reason: EndReason): Promise<boolean> {
    const room = this.rooms.get(name);
    if (!room) return false;
    await this.endRoom(room, reason);
    return true;
  }

  private async endRoom(room: Room, reason: EndReason): Promise<void> {
    if (this.rooms.get(room.name) === room) this.rooms.delete(room.name);
    if (!room.isClosed) this.opts.log.info({ room: room.name, reason }, "room closed");
    await room.close(reason);
  }

  /** Ends every room (recordings are finalised by their consumers' close), then the fan-out workers. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.all().map((r) => this.endRoom(r, "shutdown")));
    await this.workers?.close();
  }
}
