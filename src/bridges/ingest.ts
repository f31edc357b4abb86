// Pulling a source into a room (bridges.md §3): one supervised FFmpeg per ingest reads an RTMP
// stream, an HTTP(S) HLS playlist or .mp4/.flv, or a file under MEDIA_DIR, and writes H.264
// (Constrained Baseline, no B-frames: what every browser and werift viewer accepts) and Opus as
// plain RTP to the loopback ports of the room's RtpSource (Rooms.ingest), which viewers, recorders
// and the other bridges see as the room's publisher.
//
// Source URLs are untrusted input. The policy, before anything starts:
// - network sources: rtmp://, rtmps://, http(s)://….m3u8|.mp4|.flv, one line, a host, optionally
//   limited to INGEST_ALLOWED_HOSTS;
// - files: a path (relative to MEDIA_DIR, or absolute inside it) that resolves — symlinks followed —
//   to a regular media file under MEDIA_DIR; "..", ":" and every FFmpeg protocol prefix (file:,
//   concat:, subfile:, pipe:, data: …) are refused, and FFmpeg is handed "file:<real path>" so it
//   never interprets the name;
// - each job has its own -protocol_whitelist for its input (e.g. rtmp,rtmps,tcp,tls: an HLS
//   playlist naming file: or concat: segments cannot read local files) and rtp,udp for its outputs.
//
// Lifecycle: the FFmpeg job and the RtpSource end together. A job that ends for good (stopped,
// a file that played out, or failed after its restarts) closes the source, which ends the room;
// a room closed from elsewhere (admin close, shutdown) stops the job.

import type { Logger } from "../logger.js";
import { randomBytes, randomInt } from "node:crypto";
import { realpath, stat } from "node:fs/promises";
import path from "node:path";
import type { Rooms } from "../sfu/rooms.js";
import { fail, isDomainError } from "../errors.js";
import type { RtpSource, RtpTrackSpec } from "../sfu/rtp-source.js";
import type { EndReason } from "../sfu/session.js";
import { copiesIntoRoom, probeMedia } from "./probe.js";
import { whitelistArgs, type Job, type JobInfo, type JobSpec, type JobState, type Supervisor } from "./supervisor.js";

export const VIDEO_PAYLOAD_TYPE = 96;
export const AUDIO_PAYLOAD_TYPE = 111;
/** Constrained Baseline 3.1: what -profile:v baseline produces and every WebRTC H.264 decoder takes. */
export const VIDEO_FMTP = "packetization-mode=1;profile-level-id=42e01f";

/** The tracks of every ingest room, in the order of RtpSource.ports. */
export const INGEST_TRACKS: readonly RtpTrackSpec[] = [
  { kind: "video", codec: { payloadType: VIDEO_PAYLOAD_TYPE, name: "H264", clockRate: 90000, fmtp: VIDEO_FMTP, rtcpFeedback: [] } },
  { kind: "audio", codec: { payloadType: AUDIO_PAYLOAD_TYPE, name: "opus", clockRate: 48000, channels: 2, fmtp: "", rtcpFeedback: [] } },
];

export const MAX_URL_LENGTH = 2048;
/** Extensions of files (and HTTP VOD paths) FFmpeg may read as a source. */
export const MEDIA_FILE_EXTENSIONS: readonly string[] = [".mp4", ".m4v", ".mov", ".flv", ".mkv", ".webm", ".ts"];
const HTTP_EXTENSIONS = [".m3u8", ".mp4", ".flv"];
/** Network reads that block longer than this fail (and the job restarts): -rw_timeout, in µs. */
const RW_TIMEOUT_US = 10_000_000;
const PACKET_SIZE = 1200;
/** Keyframe interval of the re-encoded video (frames). */
const GOP = 30;

export type IngestSourceKind = "rtmp" | "hls" | "http" | "file";

export interface IngestSource {
  kind: IngestSourceKind;
  /** What FFmpeg opens: the URL as given, or "file:<real path>" for files. */
  input: string;
  /** For listings and logs: credentials and query string masked; files relative to MEDIA_DIR. */
  display: string;
  /** -protocol_whitelist of the input. */
  protocols: readonly string[];
  /** A live source (RTMP, HLS) restarts after it ends; a file or VOD URL ends the ingest. */
  live: boolean;
}

export interface SourcePolicy {
  /** MEDIA_DIR: files must resolve under it. */
  mediaDir: string;
  /** INGEST_ALLOWED_HOSTS: when non-empty, network sources must be on one of these (exact, or "*.example.com"). */
  allowedHosts: readonly string[];
}

const ACCEPTED = "use rtmp://, rtmps://, http(s)://….m3u8|.mp4|.flv or a file path under MEDIA_DIR";

/** `rtmp://user:pw@host/app/key?token=x` → `rtmp://****@host/app/key?****`. */
export function maskSourceUrl(raw: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)([^?#]*)([?#].*)?$/i.exec(raw);
  if (!m) return raw;
  const authority = m[2].includes("@") ? `****@${m[2].slice(m[2].lastIndexOf("@") + 1)}` : m[2];
  return `${m[1]}${authority}${m[3]}${m[4] ? `${m[4][0]}****` : ""}`;
}

/** A redactor for FFmpeg's log lines: the URL as given (and its query) never reaches the log. */
function redactorFor(source: IngestSource, raw: string): (text: string) => string {
  if (source.kind === "file") return (t) => t;
  const query = /[?#](.*)$/.exec(raw)?.[1] ?? "";
  const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(raw)?.[1] ?? "";
  return (text) => {
    let out = text.split(raw).join(source.display);
    if (query.length >= 4) out = out.split(query).join("****");
    if (userinfo.length >= 3) out = out.split(userinfo).join("****");
    return out;
  };
}

function hostAllowed(hostname: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const h = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  return allowed.some((entry) => {
    const e = entry.toLowerCase();
    if (e.startsWith("*.")) return h.endsWith(e.slice(1)) && h.length > e.length - 1;
    return h === e.replace(/^\[(.*)\]$/, "$1");
  });
}

function within(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}

function parseNetworkUrl(raw: string, scheme: string, policy: SourcePolicy): IngestSource {
  if (/\s/.test(raw)) throw fail("invalid_input", "invalid url: URLs must not contain whitespace");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail("invalid_input", "invalid url: cannot be parsed");
  }
  if (url.hostname === "") throw fail("invalid_input", "invalid url: no host");
  if (!hostAllowed(url.hostname, policy.allowedHosts)) {
    throw fail("invalid_input", `invalid url: host "${url.hostname.slice(0, 100)}" is not in INGEST_ALLOWED_HOSTS`);
  }
  const display = maskSourceUrl(raw);
  if (scheme === "rtmp" || scheme === "rtmps") {
    // rtmp://host[:port]/app/stream: an application and a stream name.
    const segments = url.pathname.split("/").filter((s) => s !== "");
    if (segments.length < 2) throw fail("invalid_input", "invalid url: an RTMP URL needs an application and a stream name (rtmp://host/app/stream)");
    return { kind: "rtmp", input: raw, display, protocols: ["rtmp", "rtmps", "tcp", "tls"], live: true };
  }
  const ext = path.posix.extname(url.pathname).toLowerCase();
  if (!HTTP_EXTENSIONS.includes(ext)) throw fail("invalid_input", "invalid url: http(s) sources must be .m3u8, .mp4 or .flv");
  // HLS segments come over the same protocols (crypto for AES-128 segments); never file: or concat:.
  if (ext === ".m3u8") return { kind: "hls", input: raw, display, protocols: ["http", "https", "tcp", "tls", "crypto"], live: true };
  return { kind: "http", input: raw, display, protocols: ["http", "https", "tcp", "tls"], live: false };
}

async function resolveFile(raw: string, policy: SourcePolicy): Promise<IngestSource> {
  if (raw.includes(":")) throw fail("invalid_input", `invalid url: file paths must not contain ':' (${ACCEPTED})`);
  if (raw.split(/[\\/]/).includes("..")) throw fail("invalid_input", "invalid url: file paths must not contain '..'");
  const root = path.resolve(policy.mediaDir);
  const abs = path.isAbsolute(raw) ? path.resolve(raw) : path.resolve(root, raw);
  if (!within(root, abs)) throw fail("invalid_input", "invalid url: file paths must be under MEDIA_DIR");
  const ext = path.extname(abs).toLowerCase();
  if (!MEDIA_FILE_EXTENSIONS.includes(ext)) {
    throw fail("invalid_input", `invalid url: unsupported file type (${MEDIA_FILE_EXTENSIONS.join(", ")})`);
  }
  let real: string;
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    real = await realpath(abs);
  } catch {
    throw fail("invalid_input", `invalid url: no such file under MEDIA_DIR: ${path.relative(root, abs).slice(0, 200)}`);
  }
  // A symlink inside MEDIA_DIR must not lead out of it.
  if (!within(realRoot, real)) throw fail("invalid_input", "invalid url: file paths must be under MEDIA_DIR");
  const st = await stat(real).catch(() => undefined);
  if (!st?.isFile()) throw fail("invalid_input", "invalid url: not a regular file");
  return { kind: "file", input: `file:${real}`, display: path.relative(root, abs), protocols: ["file"], live: false };
}

/**
 * Checks an ingest source against the policy (throws "invalid_input" with the reason) and returns
 * what FFmpeg is to open. Nothing is started here.
 */
export async function resolveIngestSource(raw: unknown, policy: SourcePolicy): Promise<IngestSource> {
  if (typeof raw !== "string" || raw === "") throw fail("invalid_input", `"url" is required: ${ACCEPTED}`);
  if (raw.length > MAX_URL_LENGTH) throw fail("invalid_input", `invalid url: longer than ${MAX_URL_LENGTH} characters`);
  if (/[\x00-\x1f\x7f]/.test(raw)) throw fail("invalid_input", "invalid url: control characters");
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (["rtmp", "rtmps", "http", "https"].includes(scheme)) {
      if (!raw.slice(scheme.length + 1).startsWith("//")) throw fail("invalid_input", `invalid url: expected ${scheme}://host/…`);
      return parseNetworkUrl(raw, scheme, policy);
    }
    throw fail("invalid_input", `invalid url: "${scheme.slice(0, 20)}:" sources are not accepted; ${ACCEPTED}`);
  }
  return resolveFile(raw, policy);
}

/** A random SSRC FFmpeg accepts (its -ssrc is a signed 32-bit integer). */
export function randomSsrc(): number {
  return randomInt(1, 0x7fffffff);
}

export interface IngestArgsOptions {
  source: IngestSource;
  loop: boolean;
  /** RtpSource.ports, in the order of `tracksFor(streams)`: video first when there is video. */
  ports: readonly number[];
  ssrcs: readonly [number, number];
  /** What the source holds (from ffprobe); both, re-encoded, when unknown. */
  streams?: IngestStreams;
}

/** The streams an ingest forwards, and whether its H.264 goes into the room as it is. */
export interface IngestStreams {
  video: boolean;
  audio: boolean;
  copyVideo: boolean;
}

const BOTH: IngestStreams = { video: true, audio: true, copyVideo: false };

/** The room tracks of an ingest of these streams (RtpSource ports follow this order). */
export function tracksFor(streams: IngestStreams = BOTH): RtpTrackSpec[] {
  return INGEST_TRACKS.filter((t) => (t.kind === "video" ? streams.video : streams.audio));
}

export function rtpOutput(port: number): string[] {
  // RTCP to the RTP port itself (RtpSource drops it there); FFmpeg would otherwise send it to port+1.
  return [...whitelistArgs(["rtp", "udp"]), "-f", "rtp", `rtp://127.0.0.1:${port}?rtcpport=${port}&pkt_size=${PACKET_SIZE}`];
}

/** FFmpeg arguments of an ingest (after the supervisor's global ones; it adds the input whitelist). */
export function ingestArgs(o: IngestArgsOptions): string[] {
  const streams = o.streams ?? BOTH;
  const ports = [...o.ports];
  const videoPort = streams.video ? ports.shift() : undefined;
  const audioPort = streams.audio ? ports.shift() : undefined;
  if ((streams.video && videoPort === undefined) || (streams.audio && audioPort === undefined)) throw new Error("an ingest needs a port per stream");
  if (!streams.video && !streams.audio) throw new Error("an ingest needs a video or an audio stream");
  const input: string[] = [];
  // Files and VOD URLs are read at their own pace; live sources arrive in real time already.
  if (o.source.kind !== "rtmp") input.push("-re");
  if (o.loop) input.push("-stream_loop", "-1");
  if (o.source.kind !== "file") input.push("-rw_timeout", String(RW_TIMEOUT_US));
  const args = [...input, "-i", o.source.input];
  if (videoPort !== undefined) {
    args.push("-map", "0:v:0");
    if (streams.copyVideo) {
      // Baseline H.264 without B-frames is what the room announces: copied, no encoder in the way.
      // MP4/FLV carry SPS/PPS out of band; viewers need them in-band before every keyframe.
      args.push("-c:v", "copy", "-bsf:v", "h264_mp4toannexb,dump_extra=freq=keyframe");
    } else {
      // Re-encoded, so B-frames and high profiles never reach a WebRTC viewer, and keyframes come
      // every GOP frames (joiners get the room's GOP cache). At most 1280x720.
      args.push(
        "-vf", "scale=w='min(iw,1280)':h='min(ih,720)':force_original_aspect_ratio=decrease:force_divisible_by=2",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "baseline", "-bf", "0",
        "-g", String(GOP), "-keyint_min", String(GOP), "-sc_threshold", "0", "-pix_fmt", "yuv420p",
        "-maxrate", "2500k", "-bufsize", "2500k",
      );
    }
    args.push("-payload_type", String(VIDEO_PAYLOAD_TYPE), "-ssrc", String(o.ssrcs[0]), ...rtpOutput(videoPort));
  }
  if (audioPort !== undefined) {
    // Audio: AAC (RTMP, HLS, MP4) or whatever it is, to Opus 48 kHz stereo.
    args.push("-map", "0:a:0", "-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "96k");
    args.push("-payload_type", String(AUDIO_PAYLOAD_TYPE), "-ssrc", String(o.ssrcs[1]), ...rtpOutput(audioPort));
  }
  return args;
}

// ---- the ingests of one server ------------------------------------------------------------------

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
    const streams: IngestStreams = probed ? { video: probed.video !== undefined, audio: probed.audio !== undefined, copyVideo: copiesIntoRoom(probed) } : BOTH;
    // Its errors ("conflict": the room has a publisher, "capacity", "shutting_down") are the caller's.
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
      redact: redactorFor(source, rawUrl),
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
