// Pulling a source into a room (docs/bridges.md, "Ingest"): one supervised FFmpeg per ingest reads
// an RTMP stream, an HTTP(S) HLS playlist or .mp4/.flv, or a file under MEDIA_DIR (checked first by
// ingest-source.ts) and writes RTP (ingest-args.ts) into the room's RtpSource (Rooms.ingest), which
// viewers, recorders and the other bridges see as the room's publisher.
//
// Lifecycle: the FFmpeg job and the RtpSource end together. A job that ends for good (stopped,
// a file that played out, or failed after its restarts) closes the source, which ends the room;
// a room closed from elsewhere (admin close, shutdown) stops the job.

import type { Logger } from "../logger.js";
import { randomBytes } from "node:crypto";
import type { Rooms } from "../sfu/rooms.js";
import { fail, isDomainError } from "../errors.js";
import type { RtpSource } from "../sfu/rtp-source.js";
import type { EndReason } from "../sfu/session.js";
import { BOTH_STREAMS, ingestArgs, randomSsrc, tracksFor, type IngestStreams } from "./ingest-args.js";
import { resolveIngestSource, sourceRedactor, type IngestSource, type SourcePolicy } from "./ingest-source.js";
import { copiesIntoRoom, probeMedia } from "./probe.js";
import type { Job } from "./job.js";
import type { JobInfo, JobSpec, JobState } from "./job-spec.js";
import type { Supervisor } from "./supervisor.js";

/** Who started an ingest: the API, or an SRS / nginx-rtmp publish callback. */
export type IngestOrigin = "api" | "srs" | "nginx-rtmp";

export interface IngestInfo {
  id: string;
  room: string;
  /** Masked (credentials and query); files relative to MEDIA_DIR. */
  url: string;
  state: JobState;
  loop: boolean;
  origin: IngestOrigin;
  createdAt: string;
  restarts: number;
  pid?: number;
  since?: string;
  lastError?: string;
  /** Media seconds FFmpeg has written in its current run. */
  outSeconds?: number;
  /** RTP packets the room has received from it. */
  packets: number;
  /** How the source's video reaches the room ("none": an audio-only source). */
  video: "copy" | "transcode" | "none";
  audio: boolean;
}

interface Entry {
  id: string;
  room: string;
  source: IngestSource;
  loop: boolean;
  origin: IngestOrigin;
  createdAt: string;
  rtp: RtpSource;
  job: Job;
  streams: IngestStreams;
  /** Why the room ends when the job is stopped on purpose. */
  stopReason?: EndReason;
  /** The final info, once the job has ended. */
  final?: IngestInfo;
}

export interface IngestsOptions {
  rooms: Pick<Rooms, "ingest">;
  supervisor: Supervisor;
  log: Logger;
  policy: SourcePolicy;
  /** Consecutive failed runs after which an ingest gives up and its room ends (default 5). */
  maxRestarts?: number;
  /**
   * Callback ingests (a publish that has just been announced): consecutive failed runs before
   * giving up (default 3: 1 + 2 + 4 s of back-off, about 10 s with the runs themselves).
   */
  callbackMaxRestarts?: number;
  /** A running FFmpeg whose output stops advancing this long is restarted (default 15 s). */
  stallTimeoutMs?: number;
}

export interface StartOptions {
  loop?: boolean;
  origin?: IngestOrigin;
  /** A callback's new publish replaces the callback ingest already in the room (a reconnecting encoder). */
  replaceCallbackIngest?: boolean;
}

const MAX_FINISHED = 256;
/** How long a network source may take to show its streams to ffprobe. */
const PROBE_MS = 8000;

export class Ingests {
  private readonly live = new Map<string, Entry>();
  /** The last ended ingest per room (GET shows why it ended), bounded. */
  private readonly finished = new Map<string, IngestInfo>();
  /** Per room, the start/stop in progress: requests for one room run one after the other. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(private readonly opts: IngestsOptions) {}

  get policy(): SourcePolicy {
    return this.opts.policy;
  }

  private serial<T>(room: string, task: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(room) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.queues.set(room, tail);
    void tail.then(() => {
      if (this.queues.get(room) === tail) this.queues.delete(room);
    });
    return next;
  }

  /**
   * Validates `url` ("invalid_input"), takes the room ("conflict" when it has a publisher) and starts
   * FFmpeg. Resolves once the job is started (state "starting"), not when media flows.
   */
  async start(room: string, url: unknown, options: StartOptions = {}): Promise<IngestInfo> {
    const source = await resolveIngestSource(url, this.opts.policy);
    const loop = options.loop ?? false;
    if (loop && source.live) throw fail("invalid_input", "loop applies to files and .mp4/.flv URLs, not to live sources");
    return this.serial(room, async () => {
      if (this.closed) throw fail("shutting_down", "server is shutting down");
      const current = this.live.get(room);
      if (current && options.replaceCallbackIngest && current.origin !== "api") {
        this.opts.log.info({ room, ingest: current.id }, "ingest replaced by a new publish");
        await this.stopEntry(current, "publisher-left");
      }
      return this.launch(room, source, loop, options.origin ?? "api");
    });
  }

  private async launch(room: string, source: IngestSource, loop: boolean, origin: IngestOrigin): Promise<IngestInfo> {
    const { rooms, supervisor, log } = this.opts;
    // Which streams exist (an audio-only or video-only source maps only what it has) and whether
    // its H.264 can be copied. A source that cannot be probed yet (a live stream about to start)
    // is taken as audio + video, re-encoded. Not for publish callbacks: nginx-rtmp and SRS wait for
    // the callback's answer before they accept the stream, so there is nothing to probe yet.
    const probed = origin === "api" ? await probeMedia(source.input, source.protocols, source.kind === "file" ? 5000 : PROBE_MS) : undefined;
    if (probed && !probed.video && !probed.audio) throw fail("unsupported_codec", "the source has neither video nor audio");
    // A looped file is re-encoded: FFmpeg (5.1) ends a copied stream's bitstream filters at its
    // first -stream_loop, so copied video would stop after one pass.
    const streams: IngestStreams = probed
      ? { video: probed.video !== undefined, audio: probed.audio !== undefined, copyVideo: !loop && copiesIntoRoom(probed) }
      : BOTH_STREAMS;
    // Rooms.ingest's errors ("conflict": the room has a publisher, "capacity", "shutting_down") reach the caller as they are.
    const rtp: RtpSource = await rooms.ingest(room, tracksFor(streams));
    const id = randomBytes(8).toString("hex");
    const ssrcs: [number, number] = [randomSsrc(), randomSsrc()];
    const createdAt = new Date().toISOString();
    const rawUrl = source.kind === "file" ? source.display : source.input;
    let entry: Entry | undefined;
    const spec: JobSpec = {
      id: `ingest:${room}:${id}`,
      kind: "ingest",
      meta: { room, ingest: id, source: source.display },
      protocols: source.protocols,
      // A file or VOD URL that played out ends the ingest; a live source is pulled again.
      restart: source.live ? "always" : "on-failure",
      maxRestarts: origin === "api" ? (this.opts.maxRestarts ?? 5) : (this.opts.callbackMaxRestarts ?? 3),
      stallTimeoutMs: this.opts.stallTimeoutMs ?? 15_000,
      redact: sourceRedactor(source, rawUrl),
      // A restart's RTP continues the stream viewers already have.
      prepare: () => rtp.restarted(),
      args: () => ingestArgs({ source, loop, ports: rtp.ports, ssrcs, streams }),
      cleanup: async () => {
        const e = entry;
        if (!e) {
          await rtp.close("error");
          return;
        }
        e.final = this.infoOf(e);
        if (this.live.get(room) === e) this.live.delete(room);
        this.remember(e.final);
        const reason: EndReason = e.stopReason ?? (e.job.state === "failed" ? "error" : "publisher-left");
        log.info({ room, ingest: id, state: e.job.state, reason, lastError: e.job.lastError }, "ingest ended");
        await rtp.close(reason);
      },
    };
    let job: Job;
    try {
      job = supervisor.start(spec);
    } catch (err) {
      await rtp.close("error");
      if (isDomainError(err, "shutting_down")) throw fail("shutting_down", "server is shutting down");
      throw err;
    }
    entry = { id, room, source, loop, origin, createdAt, rtp, job, streams };
    const e = entry;
    this.live.set(room, e);
    this.finished.delete(room);
    // The room closed from elsewhere (admin close, shutdown): FFmpeg has nothing left to feed.
    rtp.onEnd((reason) => {
      if (e.final) return;
      e.stopReason ??= reason;
      void e.job.stop();
    });
    log.info({ room, ingest: id, origin, source: source.display, pid: job.pid }, "ingest started");
    return this.infoOf(e);
  }

  private remember(info: IngestInfo): void {
    this.finished.delete(info.room);
    this.finished.set(info.room, info);
    while (this.finished.size > MAX_FINISHED) {
      const oldest = this.finished.keys().next().value;
      if (oldest === undefined) break;
      this.finished.delete(oldest);
    }
  }

  private infoOf(e: Entry): IngestInfo {
    const j: JobInfo = e.job.info();
    return {
      id: e.id,
      room: e.room,
      url: e.source.display,
      state: j.state,
      loop: e.loop,
      origin: e.origin,
      createdAt: e.createdAt,
      restarts: j.restarts,
      ...(j.pid !== undefined ? { pid: j.pid } : {}),
      ...(j.since ? { since: j.since } : {}),
      ...(j.lastError ? { lastError: j.lastError } : {}),
      ...(j.outSeconds !== undefined ? { outSeconds: j.outSeconds } : {}),
      packets: e.rtp.packets,
      video: e.streams.video ? (e.streams.copyVideo ? "copy" : "transcode") : "none",
      audio: e.streams.audio,
    };
  }

  /** The room's ingest: the running one, else the last one that ended (with its final state). */
  get(room: string): IngestInfo | undefined {
    const e = this.live.get(room);
    if (e) return this.infoOf(e);
    return this.finished.get(room);
  }

  /** The running ingest's job (tests, metrics). */
  job(room: string): Job | undefined {
    return this.live.get(room)?.job;
  }

  list(): IngestInfo[] {
    return [...this.live.values()].map((e) => this.infoOf(e));
  }

  /**
   * Stops the room's ingest and ends the room. `origins` limits it to ingests of those origins (an
   * SRS unpublish never stops an API ingest). Resolves with the final info, or undefined when
   * there was none; a finished ingest's record is dropped and returned.
   */
  stop(room: string, options: { origins?: readonly IngestOrigin[]; reason?: EndReason } = {}): Promise<IngestInfo | undefined> {
    return this.serial(room, async () => {
      const e = this.live.get(room);
      if (!e) {
        if (options.origins) return undefined;
        const done = this.finished.get(room);
        this.finished.delete(room);
        return done;
      }
      if (options.origins && !options.origins.includes(e.origin)) return undefined;
      await this.stopEntry(e, options.reason ?? "delete");
      this.finished.delete(room);
      return e.final ?? this.infoOf(e);
    });
  }

  private async stopEntry(e: Entry, reason: EndReason): Promise<void> {
    e.stopReason ??= reason;
    await e.job.stop();
    // cleanup (which closes the source) has run when stop() resolves; this is for a job that
    // never got that far.
    await e.rtp.close(reason);
  }

  /** Stops every ingest (app shutdown); their rooms end. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.live.values()].map((e) => this.serial(e.room, () => this.stopEntry(e, "shutdown"))));
  }
}
