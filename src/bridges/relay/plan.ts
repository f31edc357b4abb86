// What one relay run plays and how FFmpeg is told: the file list cut into entries (windows of
// files), where in that list a run starts (a resume point), the ffconcat list FFmpeg's concat
// demuxer reads (a demuxer over files we resolved ourselves, never the `concat:` protocol), how
// many passes one run loops over it, and the codec and output arguments for an RTMP target or a
// local room. Pure: no processes, no disk.

import { fail } from "../../errors.js";
import { rtmpOutputArgs } from "../hls.js";
import { AUDIO_PAYLOAD_TYPE, rtpOutput, VIDEO_PAYLOAD_TYPE } from "../ingest-args.js";
import { ffmpegAudioCodec, type Gravity, type RelayTarget, type Transcode, type Watermark } from "./request.js";

/** One stretch of one file, in seconds of that file. */
export interface PlanEntry {
  /** Index of the file in the task's src list. */
  file: number;
  /** What FFmpeg opens ("file:/real/path" or an http(s) URL). */
  input: string;
  from: number;
  /** undefined = to the end of the file. */
  to?: number;
  /** Seconds this entry plays (known when the file's duration or `to` is). */
  seconds?: number;
}

/** Where playback is: pass over the list (0-based), entry in `entries`, seconds into that entry. */
export interface PlayPosition {
  pass: number;
  entry: number;
  offset: number;
}

export interface ResolvedFile {
  input: string;
  /** Seconds, from ffprobe. */
  duration?: number;
  /** ms since the epoch, from the container's creation_time (absofftime maps through it). */
  creationMs?: number;
}

export interface FileWindows {
  windows?: { from: number; to?: number }[];
  absWindows?: { fromMs: number; toMs: number }[];
}

/**
 * The entries of a task's list: relofftime windows first, else absofftime mapped through
 * creation_time, else the whole file. "invalid_input" when the windows leave nothing to play.
 */
export function planEntries(files: ResolvedFile[], windows: FileWindows[]): PlanEntry[] {
  const out: PlanEntry[] = [];
  files.forEach((f, i) => {
    const w = windows[i] ?? {};
    let spans: { from: number; to?: number }[];
    if (w.windows && w.windows.length > 0) spans = w.windows;
    else if (w.absWindows && w.absWindows.length > 0) {
      if (f.creationMs === undefined) throw fail("invalid_input", `file ${i + 1} has no creation_time, so its absofftime cannot be placed`);
      spans = w.absWindows.map((a) => ({ from: Math.max(0, (a.fromMs - f.creationMs!) / 1000), to: (a.toMs - f.creationMs!) / 1000 }));
    } else spans = [{ from: 0 }];
    for (const s of spans) {
      const to = s.to !== undefined && f.duration !== undefined ? Math.min(s.to, f.duration) : s.to;
      const end = to ?? f.duration;
      if (end !== undefined && end <= s.from) continue; // the window lies past the end of the file
      out.push({ file: i, input: f.input, from: s.from, to, seconds: end !== undefined ? end - s.from : undefined });
    }
  });
  if (out.length === 0) throw fail("invalid_input", "no time window of any file has content to play");
  return out;
}

/** Where `playedSeconds` of media after `start` lands (entries of unknown length end the walk). */
export function advance(entries: PlanEntry[], start: PlayPosition, playedSeconds: number): PlayPosition {
  let { entry, offset } = start;
  let left = playedSeconds;
  while (entry < entries.length) {
    const len = entries[entry]!.seconds;
    if (len === undefined || offset + left < len) return { pass: start.pass, entry, offset: offset + left };
    left -= len - offset;
    entry++;
    offset = 0;
  }
  return { pass: start.pass, entry: entries.length, offset: 0 };
}

/** Seconds one pass over the list plays, or undefined when an entry's length is unknown. */
export function passSeconds(entries: PlanEntry[]): number | undefined {
  let total = 0;
  for (const e of entries) {
    if (e.seconds === undefined) return undefined;
    total += e.seconds;
  }
  return total;
}

/**
 * Where `playedSeconds` after the start of pass `start.pass` lands when one FFmpeg plays the passes
 * one after the other (every entry's length known), never past the end of pass `lastPass`. A start
 * inside a pass is walked as `advance` does.
 */
export function advanceLooping(entries: PlanEntry[], start: PlayPosition, playedSeconds: number, lastPass: number): PlayPosition {
  const total = passSeconds(entries);
  if (total === undefined || total <= 0 || start.entry !== 0 || start.offset !== 0) return advance(entries, start, playedSeconds);
  const passes = Math.floor(playedSeconds / total);
  const pass = start.pass + passes;
  if (pass > lastPass) return { pass: lastPass, entry: entries.length, offset: 0 };
  const at = advance(entries, { pass, entry: 0, offset: 0 }, playedSeconds - passes * total);
  return at.entry >= entries.length && pass < lastPass ? { pass: pass + 1, entry: 0, offset: 0 } : at;
}

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/** An ffconcat list playing `entries` from `from` to the end of the pass. */
export function ffconcat(entries: PlanEntry[], from: PlayPosition): string {
  const lines = ["ffconcat version 1.0"];
  for (let i = from.entry; i < entries.length; i++) {
    const e = entries[i]!;
    const inpoint = e.from + (i === from.entry ? from.offset : 0);
    lines.push(`file ${quote(e.input)}`);
    if (inpoint > 0) lines.push(`inpoint ${inpoint.toFixed(3)}`);
    if (e.to !== undefined) lines.push(`outpoint ${e.to.toFixed(3)}`);
  }
  return lines.join("\n") + "\n";
}

const OVERLAY: Record<Gravity, string> = {
  TOP_LEFT: "10:10",
  TOP_CENTER: "(W-w)/2:10",
  TOP_RIGHT: "W-w-10:10",
  CENTER_LEFT: "10:(H-h)/2",
  CENTER: "(W-w)/2:(H-h)/2",
  CENTER_RIGHT: "W-w-10:(H-h)/2",
  BOTTOM_LEFT: "10:H-h-10",
  BOTTOM_CENTER: "(W-w)/2:H-h-10",
  BOTTOM_RIGHT: "W-w-10:H-h-10",
};

export interface RunArgsOptions {
  listFile: string;
  /** Passes FFmpeg plays again after the first (-1: until stopped): the passes join inside one FFmpeg. */
  loops?: number;
  /** Watermark image as FFmpeg opens it. */
  watermark?: { input: string; gravity: Watermark["gravity"] };
  fops?: Transcode;
  target: RelayTarget;
  /** Room targets: RtpSource ports [video, audio] and SSRCs. */
  ports?: readonly number[];
  ssrcs?: readonly [number, number];
}

const GOP_SECONDS = 2;

/** FFmpeg arguments of one run (the supervisor adds its globals and the input whitelists). */
export function runArgs(o: RunArgsOptions): string[] {
  const args = ["-re", ...(o.loops ? ["-stream_loop", String(o.loops)] : []), "-f", "concat", "-safe", "0", "-i", o.listFile];
  if (o.watermark) args.push("-i", o.watermark.input);
  const fps = o.fops?.fps ?? 25;
  const filters: string[] = [];
  if (o.fops?.width !== undefined) filters.push(`scale=${o.fops.width}:${o.fops.height}`);
  else if (o.target.kind === "room") filters.push("scale=w='min(iw,1280)':h='min(ih,720)':force_original_aspect_ratio=decrease:force_divisible_by=2");
  if (o.fops?.fps !== undefined) filters.push(`fps=${o.fops.fps}`);
  if (o.watermark) {
    const base = filters.length > 0 ? `[0:v:0]${filters.join(",")}[base];[base]` : "[0:v:0]";
    args.push("-filter_complex", `${base}[1:v:0]overlay=${OVERLAY[o.watermark.gravity]}[v]`, "-map", "[v]");
  } else {
    args.push("-map", "0:v:0");
    if (filters.length > 0) args.push("-vf", filters.join(","));
  }
  const vcodec = o.fops?.vcodec ?? "libx264";
  args.push("-c:v", vcodec);
  if (vcodec === "libx264") {
    args.push("-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0", "-sc_threshold", "0");
    // WebRTC viewers get Constrained Baseline (what every browser decodes).
    if (o.target.kind === "room") args.push("-profile:v", "baseline", "-tune", "zerolatency");
  }
  args.push("-g", String(Math.round(fps * GOP_SECONDS)));
  const kbps = o.fops?.bps ?? (o.target.kind === "room" ? 2500 : undefined);
  if (kbps !== undefined) args.push("-b:v", `${kbps}k`, "-maxrate", `${kbps}k`, "-bufsize", `${kbps * 2}k`);
  if (o.target.kind === "rtmp") {
    args.push("-map", "0:a:0?", "-c:a", ffmpegAudioCodec(o.fops?.acodec ?? "aac"), "-ar", "44100", "-b:a", "128k");
    args.push(...rtmpOutputArgs(o.target.url));
    return args;
  }
  // Ports of the room's tracks: [video] for a list without audio, else [video, audio].
  const [videoPort, audioPort] = o.ports ?? [];
  if (videoPort === undefined || !o.ssrcs) throw new Error("a room target needs its RTP ports and SSRCs");
  args.push("-payload_type", String(VIDEO_PAYLOAD_TYPE), "-ssrc", String(o.ssrcs[0]), ...rtpOutput(videoPort));
  if (audioPort === undefined) return args;
  args.push("-map", "0:a:0", "-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "96k");
  args.push("-payload_type", String(AUDIO_PAYLOAD_TYPE), "-ssrc", String(o.ssrcs[1]), ...rtpOutput(audioPort));
  return args;
}
