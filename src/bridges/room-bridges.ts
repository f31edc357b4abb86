// What leaves a room through FFmpeg: HLS (HLS_DIR/{room}/stream.m3u8) and RTMP restreams.
//
// Lifecycle: a TrackConsumerFactory attaches one RoomLink to every room when its publisher
// arrives (the same hook recorders use), and the room's close cascade calls link.close(), which
// stops that room's FFmpeg jobs and is awaited by Room.close(). So a bridge ends exactly when its
// room ends, with no polling of `rooms.get(name)`, and app.close() (rooms first) leaves none. The
// API finds a live room's link by name; no link means no live publisher ("not_found").
//
// Each bridge is its own FFmpeg with its own RoomEgress (ports, sinks, SDP): one failing RTMP
// target never disturbs the HLS output or another target.

import type { Logger } from "../logger.js";
import { randomBytes } from "node:crypto";
import type { PublishedTrack } from "../sfu/publisher.js";
import type { Room, TrackConsumer, TrackConsumerFactory } from "../sfu/room.js";
import { fail, isDomainError } from "../errors.js";
import { RoomEgress } from "./egress.js";
import { audioCodecArgs, copiesVideo, hlsOutputArgs, type HlsDirectories, rtmpOutputArgs, videoCodecArgs } from "./hls.js";
import type { Job } from "./job.js";
import type { JobInfo, JobSpec } from "./job-spec.js";
import type { Supervisor } from "./supervisor.js";
import { maskRtmpUrl, urlRedactor } from "./urls.js";

export const MAX_RESTREAMS_PER_ROOM = 8;
/**
 * Room HLS: 1 s segments when transcoding (a keyframe forced every second); when copying H.264
 * the publisher is asked for a keyframe once 2 s pass without one, so segments stay within 1–2 s.
 * RTMP: a keyframe at least every 2 s either way.
 */
const HLS_SEGMENT_SECONDS = 1;
const HLS_LIST_SIZE = 6;
const KEYFRAME_SECONDS = 2;

export interface BridgeInfo extends JobInfo {
  room: string;
  createdAt: string;
}

export interface HlsInfo extends BridgeInfo {
  url: string;
}

export interface RestreamInfo extends BridgeInfo {
  /** The target with its stream key masked. */
  url: string;
}

interface Bridge {
  job: Job;
  egress: RoomEgress;
  createdAt: string;
  /** Restreams: the masked target. */
  url?: string;
}

class RoomLink implements TrackConsumer {
  hls: Bridge | undefined;
  readonly restreams = new Map<string, Bridge>();
  closed = false;

  constructor(
    readonly room: Room,
    private readonly owner: RoomBridges,
  ) {}

  get tracks(): PublishedTrack[] {
    return this.room.publisher?.tracks ?? [];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.owner.unlink(this);
    const jobs = [this.hls, ...this.restreams.values()].filter((b): b is Bridge => b !== undefined);
    await Promise.all(jobs.map((b) => b.job.stop()));
  }
}

export interface RoomBridgesOptions {
  supervisor: Supervisor;
  hls: HlsDirectories;
  /** HLS_ENABLED: every room gets HLS when its publisher arrives. */
  hlsEnabled: boolean;
  log: Logger;
  /** Where SDP files go (default os.tmpdir()). */
  tmpDir?: string;
}

export class RoomBridges {
  private readonly links = new Map<string, RoomLink>();

  constructor(private readonly opts: RoomBridgesOptions) {}

  /** For Rooms' `consumers`: one link per room (on its first track), HLS started when enabled. */
  readonly consumer: TrackConsumerFactory = (room: Room): TrackConsumer | undefined => {
    const existing = this.links.get(room.name);
    if (existing?.room === room) return undefined;
    const link = new RoomLink(room, this);
    this.links.set(room.name, link);
    if (this.opts.hlsEnabled) {
      try {
        this.startHlsOn(link);
      } catch (err) {
        this.opts.log.warn({ room: room.name, err: (err as Error).message }, "HLS not started for room");
      }
    }
    return link;
  };

  unlink(link: RoomLink): void {
    if (this.links.get(link.room.name) === link) this.links.delete(link.room.name);
  }

  private live(roomName: string): RoomLink {
    const link = this.links.get(roomName);
    if (!link || link.closed || link.room.isClosed || !link.room.publisher || link.room.publisher.closed) {
      throw fail("not_found", "no active publisher in room");
    }
    return link;
  }

  /** The room's RTP toward a new FFmpeg; "unsupported_codec" when nothing (or AV1 video) would go. */
  private egressFor(link: RoomLink, keyframeIntervalMs: number): RoomEgress {
    const tracks = link.tracks;
    if (tracks.some((t) => t.kind === "video" && t.codecName === "AV1")) throw fail("unsupported_codec", "cannot bridge AV1 video");
    return new RoomEgress({ name: link.room.name, tracks, keyframeIntervalMs, tmpDir: this.opts.tmpDir });
  }

  /** FFmpeg arguments after the input: maps and codecs (docs/bridges.md, "HLS" and "RTMP restreams"). */
  private codecArgs(egress: RoomEgress, audioRate: number, keyframeSeconds: number): string[] {
    const args: string[] = [];
    const v = egress.video;
    const a = egress.audio;
    if (v) args.push("-map", "0:v:0", ...videoCodecArgs(v.codecName, keyframeSeconds));
    if (a) args.push("-map", "0:a:0", ...audioCodecArgs(audioRate));
    return args;
  }

  private inputArgs(egress: RoomEgress): string[] {
    const v = egress.video;
    return [...(v && !copiesVideo(v.codecName) ? ["-reinit_filter", "0"] : []), ...egress.inputArgs()];
  }

  /** supervisor.start(), undoing what was set up for the job when it cannot start (e.g. shutting down). */
  private startJob(egress: RoomEgress, undo: () => void, spec: JobSpec): Job {
    try {
      return this.opts.supervisor.start(spec);
    } catch (err) {
      egress.close();
      undo();
      if (isDomainError(err, "shutting_down")) throw fail("shutting_down", "server is shutting down");
      throw err;
    }
  }

  // ---- HLS --------------------------------------------------------------------------------------

  /** Starts HLS for a live room; `created` is false when it was already running. */
  startHls(roomName: string): { created: boolean; info: HlsInfo } {
    const link = this.live(roomName);
    if (link.hls) return { created: false, info: this.hlsInfoOf(link, link.hls) };
    const bridge = this.startHlsOn(link);
    return { created: true, info: this.hlsInfoOf(link, bridge) };
  }

  private startHlsOn(link: RoomLink): Bridge {
    const name = link.room.name;
    const claim = this.opts.hls.claim(name, "room");
    const v = link.tracks.find((t) => t.kind === "video");
    let egress: RoomEgress;
    try {
      egress = this.egressFor(link, v && copiesVideo(v.codecName) ? KEYFRAME_SECONDS * 1000 - 100 : 0);
    } catch (err) {
      this.opts.hls.release(name, claim);
      throw err;
    }
    const dir = this.opts.hls.dirOf(name);
    const hls = this.opts.hls;
    const job = this.startJob(egress, () => hls.release(name, claim), {
      id: `hls:${name}:${randomBytes(3).toString("hex")}`,
      kind: "hls",
      meta: { room: name },
      protocols: ["file", "udp", "rtp"],
      restart: "always",
      prepare: async () => {
        if (!hls.holds(name, claim)) throw new Error(`HLS name "${name}" was taken over`);
        await hls.prepare(name);
        await egress.prepare();
      },
      args: () => [
        ...this.inputArgs(egress),
        ...this.codecArgs(egress, 48000, HLS_SEGMENT_SECONDS),
        ...hlsOutputArgs({ dir, segmentSeconds: HLS_SEGMENT_SECONDS, listSize: HLS_LIST_SIZE }),
      ],
      onSpawn: () => egress.spawned(),
      onExit: () => egress.exited(),
      cleanup: async () => {
        egress.close();
        if (link.hls?.job === job) link.hls = undefined;
        await hls.releaseAndRemove(name, claim);
      },
    });
    const bridge: Bridge = { job, egress, createdAt: new Date().toISOString() };
    link.hls = bridge;
    this.opts.log.info({ room: name, job: job.id }, "HLS started");
    return bridge;
  }

  async stopHls(roomName: string): Promise<boolean> {
    const link = this.links.get(roomName);
    const bridge = link?.hls;
    if (!link || !bridge) return false;
    link.hls = undefined;
    await bridge.job.stop();
    return true;
  }

  hlsInfo(roomName: string): HlsInfo | undefined {
    const link = this.links.get(roomName);
    return link?.hls ? this.hlsInfoOf(link, link.hls) : undefined;
  }

  private hlsInfoOf(link: RoomLink, b: Bridge): HlsInfo {
    return { ...b.job.info(), room: link.room.name, createdAt: b.createdAt, url: `/hls/${encodeURIComponent(link.room.name)}/stream.m3u8` };
  }

  // ---- RTMP restreams --------------------------------------------------------------------------

  /** Starts pushing a live room to an rtmp(s):// URL (validated by the caller with parseRtmpUrl). */
  addRestream(roomName: string, url: string): RestreamInfo {
    const link = this.live(roomName);
    if (link.restreams.size >= MAX_RESTREAMS_PER_ROOM) {
      throw fail("conflict", `too many restreams for this room (at most ${MAX_RESTREAMS_PER_ROOM})`);
    }
    const v = link.tracks.find((t) => t.kind === "video");
    const egress = this.egressFor(link, v && copiesVideo(v.codecName) ? KEYFRAME_SECONDS * 1000 - 100 : 0);
    const id = randomBytes(8).toString("hex");
    const masked = maskRtmpUrl(url);
    const job = this.startJob(egress, () => undefined, {
      id: `restream:${roomName}:${id}`,
      kind: "restream",
      meta: { room: roomName, restream: id, target: masked },
      protocols: ["file", "udp", "rtp"],
      restart: "always",
      redact: urlRedactor(url),
      prepare: () => egress.prepare(),
      args: () => [...this.inputArgs(egress), ...this.codecArgs(egress, 44100, KEYFRAME_SECONDS), ...rtmpOutputArgs(url)],
      onSpawn: () => egress.spawned(),
      onExit: () => egress.exited(),
      cleanup: () => {
        egress.close();
        if (link.restreams.get(id)?.job === job) link.restreams.delete(id);
      },
    });
    const bridge: Bridge = { job, egress, createdAt: new Date().toISOString(), url: masked };
    link.restreams.set(id, bridge);
    this.opts.log.info({ room: roomName, restream: id, target: masked }, "restream started");
    return this.restreamInfoOf(link, id, bridge);
  }

  /** The room's restreams; throws "not_found" when the room has no live publisher. */
  listRestreams(roomName: string): RestreamInfo[] {
    const link = this.live(roomName);
    return [...link.restreams].map(([id, b]) => this.restreamInfoOf(link, id, b));
  }

  async removeRestream(roomName: string, id: string): Promise<boolean> {
    const link = this.links.get(roomName);
    const bridge = link?.restreams.get(id);
    if (!link || !bridge) return false;
    link.restreams.delete(id);
    await bridge.job.stop();
    return true;
  }

  private restreamInfoOf(link: RoomLink, id: string, b: Bridge): RestreamInfo {
    return { ...b.job.info(), id, room: link.room.name, createdAt: b.createdAt, url: b.url ?? "" };
  }

  /** The live link of a room (tests, metrics). */
  link(roomName: string): { hls?: Job; hlsEgress?: RoomEgress; restreams: Job[] } | undefined {
    const link = this.links.get(roomName);
    if (!link) return undefined;
    return { hls: link.hls?.job, hlsEgress: link.hls?.egress, restreams: [...link.restreams.values()].map((b) => b.job) };
  }

  /** Stops every room's bridges (rooms normally do this themselves as they close). */
  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
  }
}
