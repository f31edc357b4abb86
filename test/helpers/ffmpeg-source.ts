// A live FFmpeg test source: test pattern video (VP8, VP9 or H.264) and a sine tone (Opus), each
// sent as RTP to a loopback UDP port, from one FFmpeg process with one `-f rtp` output per track.
import { spawn, type ChildProcess } from "node:child_process";
import { resolveFfmpeg } from "../../src/bridges/ffmpeg-path.js";
import { LOOPBACK } from "./net.js";

export type SourceVideoCodec = "VP8" | "VP9" | "H264";
export type H264Profile = "baseline" | "main" | "high";

/**
 * profile-level-id advertised in SDP for each x264 profile at level 3.1. x264 writes slightly
 * different constraint flags in its SPS (baseline 42c01f, main 4d401f, high 64001f); by RFC 6184
 * §8.1 they name the same profiles (42c0 and 42e0 are both constrained baseline).
 */
export const H264_PROFILE_IDC: Record<H264Profile, string> = { baseline: "42", main: "4d", high: "64" };
const ADVERTISED_CONSTRAINTS: Record<H264Profile, string> = { baseline: "e0", main: "00", high: "00" };

/** "3.1" → "1f" (level_idc = 10 × level). */
export function h264LevelHex(level: string): string {
  const n = Math.round(Number(level) * 10);
  if (!Number.isFinite(n) || n <= 0 || n > 255) throw new Error(`bad H.264 level "${level}"`);
  return n.toString(16).padStart(2, "0");
}

export function h264ProfileLevelId(profile: H264Profile, level = "3.1"): string {
  return H264_PROFILE_IDC[profile] + ADVERTISED_CONSTRAINTS[profile] + h264LevelHex(level);
}

export interface VideoSourceOptions {
  /** UDP port on `host` that receives the RTP (and FFmpeg's RTCP sender reports). */
  port: number;
  host?: string;
  codec: SourceVideoCodec;
  width?: number; // 640
  height?: number; // 360
  fps?: number; // 30
  /** Frames between keyframes (-g). Default: fps (one keyframe a second). */
  gop?: number;
  bitrateKbps?: number; // 800
  h264Profile?: H264Profile; // baseline
  h264Level?: string; // "3.1"
  /** VP9 profile: 0 (8-bit 4:2:0, default) or 2 (10-bit 4:2:0). */
  vp9Profile?: 0 | 2;
  /** lavfi pattern: testsrc2 (moving, default) or testsrc. */
  pattern?: "testsrc2" | "testsrc";
  /**
   * Replay this already-encoded file (in `codec`) in real time, looped, without encoding: the
   * benchmarks' publisher, so no encoder competes with the server for the CPU. Size, rate and
   * GOP are then the file's.
   */
  file?: string;
  payloadType?: number;
  ssrc?: number;
}

export interface AudioSourceOptions {
  port: number;
  host?: string;
  frequency?: number; // 440
  bitrateKbps?: number; // 64
  payloadType?: number; // 111
  ssrc?: number;
}

export interface FfmpegSourceOptions {
  video?: VideoSourceOptions;
  audio?: AudioSourceOptions;
  /** Stop after this many seconds of media (-t); default: run until close(). */
  durationSeconds?: number;
  /** Largest RTP packet FFmpeg writes (URL pkt_size). Default 1200, like browsers. */
  packetSize?: number;
  /** Binary to run; default resolveFfmpeg(). */
  ffmpegPath?: string;
}

export interface VideoSourceInfo {
  codec: SourceVideoCodec;
  payloadType: number;
  ssrc: number;
  clockRate: 90000;
  width: number;
  height: number;
  fps: number;
  gop: number;
  /** H.264 only. */
  h264Profile?: H264Profile;
  /** H.264 only: what to advertise in SDP, e.g. "42e01f". */
  profileLevelId?: string;
  /** The SDP fmtp line for this stream ("" for VP8). */
  fmtp: string;
}

export interface AudioSourceInfo {
  codec: "opus";
  payloadType: number;
  ssrc: number;
  clockRate: 48000;
  channels: 2;
}

export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface FfmpegSource {
  readonly pid: number;
  readonly process: ChildProcess;
  readonly args: readonly string[];
  readonly video?: VideoSourceInfo;
  readonly audio?: AudioSourceInfo;
  /** Resolves when FFmpeg exits, whoever ended it. */
  readonly exited: Promise<FfmpegExit>;
  /** Whether FFmpeg is still running. */
  running(): boolean;
  /** The last 64 KiB FFmpeg wrote to stderr (errors only: it runs with -loglevel error). */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 2 s; resolves once the process is gone. Idempotent. */
  close(): Promise<void>;
}

const STDERR_KEEP = 64 * 1024;

/** True if a process with this pid exists (signal 0 probes without killing). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** FFmpeg's -ssrc is a signed 32-bit option: values above 2^31-1 make it exit ("out of range"). */
function randomSsrc(): number {
  return Math.floor(Math.random() * 0x7ffffffe) + 1;
}

function checkSsrc(ssrc: number | undefined): void {
  if (ssrc !== undefined && !(Number.isInteger(ssrc) && ssrc >= 1 && ssrc <= 0x7fffffff)) {
    throw new Error(`ssrc ${ssrc} not in 1..2147483647 (FFmpeg's -ssrc is a signed 32-bit integer)`);
  }
}

function rtpUrl(host: string, port: number, packetSize: number): string {
  // RTCP to the RTP port itself (the receiver demultiplexes by RFC 5761): FFmpeg would otherwise
  // send its sender reports to port+1, which may belong to anybody.
  return `rtp://${host}:${port}?rtcpport=${port}&pkt_size=${packetSize}`;
}

export function buildFfmpegArgs(opts: FfmpegSourceOptions): {
  args: string[];
  video?: VideoSourceInfo;
  audio?: AudioSourceInfo;
} {
  if (!opts.video && !opts.audio) throw new Error("FFmpeg source needs video, audio or both");
  checkSsrc(opts.video?.ssrc);
  checkSsrc(opts.audio?.ssrc);
  const packetSize = opts.packetSize ?? 1200;
  const args = ["-hide_banner", "-nostdin", "-loglevel", "error"];
  let video: VideoSourceInfo | undefined;
  let audio: AudioSourceInfo | undefined;
  let input = 0;
  const inputs: { kind: "video" | "audio"; index: number }[] = [];

  if (opts.video) {
    const v = opts.video;
    const width = v.width ?? 640;
    const height = v.height ?? 360;
    const fps = v.fps ?? 30;
    if (v.file) args.push("-re", "-stream_loop", "-1", "-i", v.file);
    else args.push("-re", "-f", "lavfi", "-i", `${v.pattern ?? "testsrc2"}=size=${width}x${height}:rate=${fps}`);
    inputs.push({ kind: "video", index: input++ });
    const gop = v.gop ?? fps;
    const profile = v.codec === "H264" ? (v.h264Profile ?? "baseline") : undefined;
    const profileLevelId = profile ? h264ProfileLevelId(profile, v.h264Level ?? "3.1") : undefined;
    video = {
      codec: v.codec,
      payloadType: v.payloadType ?? (v.codec === "VP8" ? 96 : v.codec === "VP9" ? 98 : 102),
      ssrc: v.ssrc ?? randomSsrc(),
      clockRate: 90000,
      width,
      height,
      fps,
      gop,
      h264Profile: profile,
      profileLevelId,
      fmtp:
        v.codec === "H264"
          ? `profile-level-id=${profileLevelId};packetization-mode=1;level-asymmetry-allowed=1`
          : v.codec === "VP9"
            ? `profile-id=${v.vp9Profile ?? 0}`
            : "",
    };
  }
  if (opts.audio) {
    args.push("-re", "-f", "lavfi", "-i", `sine=frequency=${opts.audio.frequency ?? 440}:sample_rate=48000`);
    inputs.push({ kind: "audio", index: input++ });
    audio = {
      codec: "opus",
      payloadType: opts.audio.payloadType ?? 111,
      ssrc: opts.audio.ssrc ?? randomSsrc(),
      clockRate: 48000,
      channels: 2,
    };
  }
  if (opts.durationSeconds !== undefined) args.push("-t", String(opts.durationSeconds));

  for (const { kind, index } of inputs) {
    if (kind === "video" && opts.video && video) {
      const v = opts.video;
      const rate = `${v.bitrateKbps ?? 800}k`;
      args.push("-map", `${index}:v`);
      if (v.file) {
        args.push("-c:v", "copy", "-payload_type", String(video.payloadType), "-ssrc", String(video.ssrc));
        args.push("-f", "rtp", rtpUrl(v.host ?? LOOPBACK, v.port, packetSize));
        continue;
      }
      switch (v.codec) {
        case "VP8":
          args.push("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-auto-alt-ref", "0");
          break;
        case "VP9":
          // FFmpeg's VP9 RTP packetizer is marked experimental.
          args.push("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1");
          args.push("-auto-alt-ref", "0", "-strict", "experimental");
          if (v.vp9Profile === 2) args.push("-pix_fmt", "yuv420p10le", "-profile:v", "2");
          break;
        case "H264":
          args.push("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0");
          args.push("-profile:v", video.h264Profile ?? "baseline", "-level:v", v.h264Level ?? "3.1", "-pix_fmt", "yuv420p");
          args.push("-sc_threshold", "0");
          // x264 writes the lowest profile the features it uses need, and -preset ultrafast turns
          // CABAC and 8x8 transforms off: without these, "main" and "high" come out as
          // Constrained Baseline (42c01f) in the SPS.
          if (video.h264Profile === "main") args.push("-x264-params", "cabac=1");
          if (video.h264Profile === "high") args.push("-x264-params", "cabac=1:8x8dct=1");
          break;
      }
      args.push("-g", String(video.gop), "-keyint_min", String(video.gop), "-b:v", rate, "-maxrate", rate, "-bufsize", rate);
      args.push("-payload_type", String(video.payloadType), "-ssrc", String(video.ssrc));
      args.push("-f", "rtp", rtpUrl(v.host ?? LOOPBACK, v.port, packetSize));
    }
    if (kind === "audio" && opts.audio && audio) {
      args.push("-map", `${index}:a`, "-c:a", "libopus", "-ar", "48000", "-ac", "2");
      args.push("-b:a", `${opts.audio.bitrateKbps ?? 64}k`, "-application", "lowdelay", "-frame_duration", "20");
      args.push("-payload_type", String(audio.payloadType), "-ssrc", String(audio.ssrc));
      args.push("-f", "rtp", rtpUrl(opts.audio.host ?? LOOPBACK, opts.audio.port, packetSize));
    }
  }
  return { args, video, audio };
}

/** Starts FFmpeg; media flows at real time (-re) until close() or durationSeconds. */
export function startFfmpegSource(opts: FfmpegSourceOptions): FfmpegSource {
  const { args, video, audio } = buildFfmpegArgs(opts);
  const bin = opts.ffmpegPath ?? resolveFfmpeg();
  // stdout is ignored: FFmpeg 4 prints the SDP there when no -sdp_file is given.
  const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  let errText = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    errText = (errText + chunk).slice(-STDERR_KEEP);
  });
  const exited = new Promise<FfmpegExit>((resolve) => {
    let done = false;
    const finish = (e: FfmpegExit): void => {
      if (done) return;
      done = true;
      resolve(e);
    };
    child.once("exit", (code, signal) => finish({ code, signal }));
    // spawn failure (ENOENT, EACCES): no exit event follows.
    child.once("error", (err) => {
      errText += `\nspawn failed: ${err.message}`;
      finish({ code: null, signal: null });
    });
  });
  let exitedNow = false;
  void exited.then(() => (exitedNow = true));
  const pid = child.pid;
  if (pid === undefined) {
    // spawn reported an error asynchronously; make it visible as a thrown error right away.
    throw new Error(`could not start ${bin}`);
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      if (!exitedNow && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }, 2000);
        await exited;
        clearTimeout(timer);
      }
      child.stderr?.destroy();
    })());

  return {
    pid,
    process: child,
    args,
    video,
    audio,
    exited,
    running: () => !exitedNow && child.exitCode === null && child.signalCode === null,
    stderr: () => errText,
    close,
  };
}

export interface RtmpPushOptions {
  /** Default 320x240 at 25 fps. */
  width?: number;
  height?: number;
  fps?: number;
  /** Keyframe interval in frames; default one a second. */
  gop?: number;
  /** B-frames, as encoders for RTMP commonly send (default 0: then tuned for latency). */
  bFrames?: number;
  /** H.264 High with CABAC instead of x264's default for the preset. */
  high?: boolean;
}

/**
 * What an encoder sends an RTMP server: FFmpeg's test pattern and a tone as H.264 + AAC in FLV,
 * in real time, until killed.
 */
export function pushRtmp(url: string, opts: RtmpPushOptions = {}): ChildProcess {
  const fps = opts.fps ?? 25;
  const bFrames = opts.bFrames ?? 0;
  return spawn(
    resolveFfmpeg(),
    [
      "-hide_banner",
      "-nostdin",
      "-loglevel",
      "error",
      "-re",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${opts.width ?? 320}x${opts.height ?? 240}:rate=${fps}`,
      "-re",
      "-f",
      "lavfi",
      "-i",
      "sine=frequency=440:sample_rate=44100",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      ...(opts.high ? ["-profile:v", "high", "-x264-params", "cabac=1"] : []),
      ...(bFrames > 0 ? ["-bf", String(bFrames)] : ["-tune", "zerolatency"]),
      "-g",
      String(opts.gop ?? fps),
      "-pix_fmt",
      "yuv420p",
      "-c:a",
      "aac",
      "-b:a",
      "64k",
      "-f",
      "flv",
      url,
    ],
    { stdio: "ignore" },
  );
}

/** Signals a child process (SIGKILL by default) and resolves once it has exited. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/**
 * Runs FFmpeg to completion to write a test file (`args` are its inputs and codecs; the output
 * `file` is overwritten); rejects with FFmpeg's exit code and error lines when it fails.
 */
export function makeMedia(file: string, args: readonly string[]): Promise<void> {
  const child = spawn(resolveFfmpeg(), ["-hide_banner", "-nostdin", "-loglevel", "error", ...args, "-y", file], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`FFmpeg writing ${file}: exit ${code}: ${stderr.trim().slice(-500)}`))));
  });
}
