// Playable recordings. A room session leaves one file per track (IVF or Annex B H.264 video,
// Ogg Opus audio), which no browser plays side by side in sync. When every track of a session is
// finished, one FFmpeg run merges them into `{room}_{unixSeconds}.webm` (VP8/VP9/AV1 and Opus,
// both copied) or `.mp4` (H.264 copied, Opus → AAC, faststart) in the same directory.
//
// Sync: each track file's timestamps start at 0 at its own first frame, and video starts later
// than audio (it waits for a keyframe). The recorder reports the wall clock of each file's first
// frame; the later track is delayed by the difference (`-itsoffset`, or a `setts` bitstream
// filter for H.264). Annex B carries no timestamps, so H.264 is read at the average frame rate
// its RTP timestamps showed.
//
// Jobs run one at a time, each FFmpeg spawned with an argument array (no shell), killed when it
// overruns its time limit, and killed by close(). Output is written under a hidden temporary name
// and renamed when complete, so a half-written file is never listed or served.

import type { Logger } from "../logger.js";
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, lstatSync, openSync, readSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import path from "node:path";
import { resolveFfmpeg } from "../bridges/ffmpeg-path.js";
import { playbackContainerOf, type PlaybackContainer } from "../media/codecs.js";
import type { PublishedTrack } from "../sfu/publisher.js";
import type { Room, TrackConsumer, TrackConsumerFactory } from "../sfu/room.js";
import { freeRecordName, parseRecordName } from "./names.js";
import type { FinishedRecording } from "./recorder.js";

/** One finished track file of a session. */
export interface TrackFile {
  /** Path of the file (in the records directory). */
  file: string;
  info: FinishedRecording;
}

/** One session to make playable: at least one of the two. */
export interface PlaybackJob {
  room: string;
  video?: TrackFile;
  audio?: TrackFile;
}

/** The container of the session's merged file, chosen by its video codec. */
export function playbackContainer(job: PlaybackJob): PlaybackContainer {
  return playbackContainerOf(job.video?.info.codec);
}

/**
 * The session's seconds: the earliest of its track files' name seconds (the tracks of one session
 * are named within a second or two of each other), else the earliest first-frame time.
 */
export function sessionSeconds(job: PlaybackJob): number {
  const tracks = [job.video, job.audio].filter((t): t is TrackFile => t !== undefined);
  const named = tracks.map((t) => parseRecordName(path.basename(t.file))?.seconds).filter((s): s is number => s !== undefined);
  if (named.length > 0) return Math.min(...named);
  const started = tracks.map((t) => t.info.startedAt).filter((t) => t > 0);
  return Math.floor((started.length ? Math.min(...started) : Date.now()) / 1000);
}

/** Seconds each track starts after the earlier one (the earlier one gets 0). */
export function trackOffsets(job: PlaybackJob): { video: number; audio: number } {
  const v = job.video?.info.startedAt ?? 0;
  const a = job.audio?.info.startedAt ?? 0;
  if (!job.video || !job.audio || v <= 0 || a <= 0) return { video: 0, audio: 0 };
  const base = Math.min(v, a);
  return { video: (v - base) / 1000, audio: (a - base) / 1000 };
}

/**
 * The Opus pre-skip of an Ogg Opus file in seconds (OpusHead bytes 10–11, 48 kHz samples), 0 when
 * the head is not in its first kilobyte.
 */
export function oggOpusPreSkip(file: string): number {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const head = Buffer.alloc(1024);
    const n = readSync(fd, head, 0, head.length, 0);
    const at = head.subarray(0, n).indexOf("OpusHead");
    return at >= 0 && at + 12 <= n ? head.readUInt16LE(at + 10) / 48000 : 0;
  } catch {
    return 0;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The delays to give FFmpeg's inputs. Copying Ogg Opus into WebM places the video late by the
 * Opus pre-skip (FFmpeg lines the pre-skipped samples up with the video's start, while players
 * drop them), so for WebM the video's delay is reduced by it, or the audio's raised.
 */
export function inputDelays(job: PlaybackJob, preSkip: number): { video: number; audio: number } {
  const o = trackOffsets(job);
  if (!job.video || !job.audio || playbackContainer(job) !== "webm" || preSkip <= 0) return o;
  const rel = o.video - o.audio - preSkip;
  return rel >= 0 ? { video: rel, audio: 0 } : { video: 0, audio: -rel };
}

/** Average frame rate of a video file from its frame count and RTP span; 30 when unknown. */
export function averageFrameRate(info: FinishedRecording): number {
  if (info.frames < 2 || !(info.durationSeconds > 0)) return 30;
  const fps = info.frames / info.durationSeconds;
  return Number.isFinite(fps) && fps >= 1 && fps <= 240 ? Math.round(fps * 1000) / 1000 : 30;
}

const seconds = (s: number) => s.toFixed(3);

/**
 * FFmpeg's arguments for one job, writing `output` (format given explicitly: it has a temporary
 * name). `preSkip`: the audio file's Opus pre-skip in seconds (see inputDelays).
 */
export function buildPlaybackArgs(job: PlaybackJob, output: string, preSkip = 0): string[] {
  if (!job.video && !job.audio) throw new Error("a playback job needs a video or an audio file");
  const container = playbackContainer(job);
  const delays = inputDelays(job, preSkip);
  const args = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"];
  const maps: string[] = [];
  const filters: string[] = [];
  let input = 0;
  if (job.video) {
    if (job.video.info.codec === "H264") {
      // Annex B has no timestamps: the demuxer gets the rate the RTP timestamps showed, and as
      // -itsoffset does not move generated timestamps, the delay is added by a bitstream filter.
      args.push("-fflags", "+genpts", "-f", "h264", "-framerate", String(averageFrameRate(job.video.info)));
      if (delays.video >= 0.001) filters.push("-bsf:v", `setts=ts=TS+${seconds(delays.video)}/TB`);
    } else {
      if (delays.video >= 0.001) args.push("-itsoffset", seconds(delays.video));
      args.push("-f", "ivf");
    }
    args.push("-i", job.video.file);
    maps.push("-map", `${input++}:v:0`);
  }
  if (job.audio) {
    if (delays.audio >= 0.001) args.push("-itsoffset", seconds(delays.audio));
    args.push("-f", "ogg", "-i", job.audio.file);
    maps.push("-map", `${input++}:a:0`);
  }
  args.push(...maps);
  if (job.video) args.push("-c:v", "copy", ...filters);
  if (job.audio) args.push(...(container === "mp4" ? ["-c:a", "aac", "-b:a", "128k"] : ["-c:a", "copy"]));
  if (container === "mp4") args.push("-movflags", "+faststart");
  args.push("-f", container, output);
  return args;
}

/** Whether anything (a file, a directory, a link) has this name. */
function existsAt(dir: string, name: string): boolean {
  try {
    lstatSync(path.join(dir, name));
    return true;
  } catch {
    return false;
  }
}

export interface PlaybackOptions {
  /** The records directory: inputs are there, the output goes there. */
  dir: string;
  log: Logger;
  /** ms one FFmpeg run may take before it is killed (default 10 minutes). */
  timeoutMs?: number;
  /** The FFmpeg binary; default resolveFfmpeg(), looked up at the first job. */
  ffmpegPath?: string;
}

interface Queued {
  job: PlaybackJob;
  resolve: (file: string | undefined) => void;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

/**
 * The merge queue: at most one FFmpeg at a time. `enqueue` resolves with the merged file's path,
 * or undefined when the job failed, timed out or was cancelled by close(); it never rejects.
 */
export class PlaybackQueue {
  private readonly queue: Queued[] = [];
  private running: Running | undefined;
  private draining: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly timeoutMs: number;
  /** Jobs that produced a file / that did not. */
  done = 0;
  failed = 0;

  constructor(private readonly opts: PlaybackOptions) {
    this.timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  }

  /** Jobs waiting plus the one running. */
  get size(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  enqueue(job: PlaybackJob): Promise<string | undefined> {
    if (this.closing) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.queue.push({ job, resolve });
      this.draining ??= this.drain().finally(() => (this.draining = undefined));
    });
  }

  private async drain(): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      if (this.closing) {
        next.resolve(undefined);
        continue;
      }
      let out: string | undefined;
      try {
        out = await this.run(next.job);
      } catch (err) {
        this.opts.log.error({ room: next.job.room, err: (err as Error).message }, "playback file not made");
      }
      if (out) this.done++;
      else this.failed++;
      next.resolve(out);
    }
  }

  private async run(job: PlaybackJob): Promise<string | undefined> {
    const bin = this.opts.ffmpegPath ?? resolveFfmpeg();
    const dir = this.opts.dir;
    const container = playbackContainer(job);
    const name = freeRecordName({ room: job.room, playback: true, seconds: sessionSeconds(job), extension: container }, (n) => existsAt(dir, n));
    // Hidden, and not a recording name: never listed or served while FFmpeg writes it.
    const temp = path.join(dir, `.${name}.part`);
    const args = buildPlaybackArgs(job, temp, job.audio ? oggOpusPreSkip(job.audio.file) : 0);
    const started = Date.now();
    const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"], windowsHide: true, shell: false });
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, this.timeoutMs);
    let spawnError: Error | undefined;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("error", (err) => {
        spawnError = err;
        resolve({ code: null, signal: null });
      });
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
    this.running = { child, exited: exited.then(() => undefined) };
    const { code, signal } = await exited;
    clearTimeout(timer);
    this.running = undefined;

    const ok = code === 0 && !timedOut && !this.closing;
    if (ok) {
      try {
        await rename(temp, path.join(dir, name));
        const { video, audio } = trackOffsets(job);
        this.opts.log.info({ room: job.room, file: name, ms: Date.now() - started, videoOffsetS: video, audioOffsetS: audio }, "playback file ready");
        return path.join(dir, name);
      } catch (err) {
        this.opts.log.error({ room: job.room, file: name, err: (err as Error).message }, "playback file not made");
      }
    } else {
      const why = spawnError
        ? `could not start ${bin} (${(spawnError as NodeJS.ErrnoException).code ?? spawnError.message})`
        : timedOut
          ? `killed after ${this.timeoutMs} ms`
          : this.closing
            ? "stopped by shutdown"
            : `FFmpeg ${signal ? `killed by ${signal}` : `exited with ${code}`}`;
      const level = this.closing ? "info" : "error";
      this.opts.log[level]({ room: job.room, file: name, err: why, stderr: stderr.trim().slice(-1000) || undefined }, "playback file not made");
    }
    await rm(temp, { force: true }).catch(() => undefined);
    return undefined;
  }

  /** Cancels waiting jobs, kills the running FFmpeg and waits for it to exit. Idempotent. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      for (const q of this.queue.splice(0)) q.resolve(undefined);
      const running = this.running;
      if (running) {
        running.child.kill("SIGKILL");
        await running.exited;
      }
      await this.draining;
    })());
  }
}

/** The recorder shape this module needs (TrackRecorder has it). */
interface FileRecorder extends TrackConsumer {
  readonly filePath: string;
}

function isFileRecorder(c: TrackConsumer): c is FileRecorder {
  return typeof (c as Partial<FileRecorder>).filePath === "string";
}

interface Session {
  room: string;
  /** Files of this session whose recorder has not closed yet. */
  open: Set<string>;
  finished: TrackFile[];
}

/**
 * Groups the track files of each room session (one published room, one Room object) and hands the
 * session to the queue once every one of its recorders has closed, with the files that finished
 * well. A track that recorded nothing or failed does not hold the others back.
 */
export class PlaybackSessions {
  private readonly byFile = new Map<string, Session>();
  private readonly jobs = new Set<Promise<string | undefined>>();

  constructor(private readonly queue: PlaybackQueue) {}

  /** Wraps a recorder factory: each recorder it makes is counted in its room's session. */
  wrap(factory: TrackConsumerFactory): TrackConsumerFactory {
    const sessions = new WeakMap<Room, Session>();
    return (room: Room, track: PublishedTrack) => {
      const consumer = factory(room, track);
      if (!consumer || !isFileRecorder(consumer)) return consumer;
      let session = sessions.get(room);
      if (!session) {
        session = { room: room.name, open: new Set(), finished: [] };
        sessions.set(room, session);
      }
      const file = consumer.filePath;
      session.open.add(file);
      this.byFile.set(file, session);
      return {
        close: async () => {
          try {
            await consumer.close();
          } finally {
            this.settled(file);
          }
        },
      };
    };
  }

  /** The recorder's onFinished: the file is complete and usable. */
  finished(file: string, info: FinishedRecording): void {
    this.byFile.get(file)?.finished.push({ file, info });
  }

  private settled(file: string): void {
    const session = this.byFile.get(file);
    if (!session) return;
    this.byFile.delete(file);
    session.open.delete(file);
    if (session.open.size > 0) return;
    const video = session.finished.find((t) => t.info.kind === "video");
    const audio = session.finished.find((t) => t.info.kind === "audio");
    if (!video && !audio) return;
    const job = this.queue.enqueue({ room: session.room, video, audio });
    this.jobs.add(job);
    void job.finally(() => this.jobs.delete(job));
  }

  /** Resolves when every job handed over so far has ended (tests). */
  async idle(): Promise<void> {
    while (this.jobs.size > 0) await Promise.all([...this.jobs]);
  }
}
