// HLS output directories: HLS_DIR/{name}/stream.m3u8 plus seg_<n>.ts, shared by room HLS and the
// /start-stream jobs. One writer per name at a time (a claim), a clean directory before each
// FFmpeg start (a stale playlist is never served as live), the directory removed on stop.
// Also the FFmpeg output arguments for HLS and FLV/RTMP, and the codec choices of docs/bridges.md ("HLS"):
// H.264 copied, VP8/VP9 → libx264 (veryfast, zerolatency), Opus → AAC.

import { lstatSync } from "node:fs";
import { mkdir, readdir, rm, rmdir, writeFile, unlink } from "node:fs/promises";
import path from "node:path";
import { ROOM_NAME_RE } from "../config.js";
import { fail } from "../errors.js";
import type { CodecName } from "../media/codecs.js";
import { whitelistArgs } from "./protocols.js";

export const PLAYLIST = "stream.m3u8";
/** Files served from a name's directory: the playlist and its segments, nothing else. */
export const HLS_FILE_RE = /^(?:stream\.m3u8|seg_\d{1,20}\.ts)$/;
/** Files FFmpeg writes there (with temp_file: "<name>.tmp"), removed on cleanup. */
const OWN_FILE_RE = /^(?:stream\.m3u8|seg_\d{1,20}\.ts)(?:\.tmp)?$/;

export class HlsDirectories {
  readonly root: string;
  /** Who writes each name now: the kind of writer and the token of its claim. */
  private readonly owners = new Map<string, { kind: string; token: string }>();
  private seq = 0;

  constructor(dir: string) {
    this.root = path.resolve(dir);
  }

  /** HLS_DIR/{name}; throws on a name that is not a room name. */
  dirOf(name: string): string {
    if (!ROOM_NAME_RE.test(name)) throw fail("invalid_input", `invalid HLS name "${name.slice(0, 80)}"`);
    return path.join(this.root, name);
  }

  /** The kind of writer holding `name` ("room", "stream"), if any. */
  owner(name: string): string | undefined {
    return this.owners.get(name)?.kind;
  }

  /**
   * Takes `name` for a writer of `kind` and returns the claim's token. A writer of another kind
   * holding it → a "conflict" error; one of the same kind (a room published again while its old
   * HLS is still stopping) is taken over: the old one's release and cleanup then do nothing.
   */
  claim(name: string, kind: string): string {
    this.dirOf(name);
    const current = this.owners.get(name);
    if (current !== undefined && current.kind !== kind) throw fail("conflict", `HLS name "${name}" is in use by a ${current.kind}`);
    const token = `${kind}#${++this.seq}`;
    this.owners.set(name, { kind, token });
    return token;
  }

  /** Whether the claim with this token still holds `name`. */
  holds(name: string, token: string): boolean {
    return this.owners.get(name)?.token === token;
  }

  release(name: string, token: string): void {
    if (this.holds(name, token)) this.owners.delete(name);
  }

  /** Removes the name's files and releases it, unless another claim has taken it over meanwhile. */
  async releaseAndRemove(name: string, token: string): Promise<void> {
    if (!this.holds(name, token)) return;
    await this.remove(name).catch(() => undefined);
    this.release(name, token);
  }

  /** Creates the directory (writable, checked) and empties it of a previous run's files. */
  async prepare(name: string): Promise<string> {
    const dir = this.dirOf(name);
    await mkdir(dir, { recursive: true });
    const st = lstatSync(dir);
    if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
    await this.clear(dir);
    // Fails with EACCES/EROFS/ENOSPC here rather than inside FFmpeg.
    const probe = path.join(dir, `.write-test-${process.pid}`);
    await writeFile(probe, "");
    await unlink(probe);
    return dir;
  }

  private async clear(dir: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    await Promise.all(names.filter((n) => OWN_FILE_RE.test(n)).map((n) => rm(path.join(dir, n), { force: true })));
  }

  /** Removes the playlist and segments, and the directory when nothing else is in it. */
  async remove(name: string): Promise<void> {
    const dir = this.dirOf(name);
    await this.clear(dir);
    await rmdir(dir).catch(() => undefined);
  }

  /**
   * The file to serve for GET /hls/{name}/{file}: undefined for any name or file that is not ours
   * (separators, dot segments, absolute paths, NUL, other extensions all fail the patterns), and
   * the resolved path is checked to sit directly in HLS_DIR/{name}.
   */
  fileFor(name: string, file: string): string | undefined {
    if (!ROOM_NAME_RE.test(name) || !HLS_FILE_RE.test(file)) return undefined;
    const dir = path.join(this.root, name);
    const full = path.join(dir, file);
    if (path.dirname(full) !== dir || path.dirname(dir) !== this.root) return undefined;
    return full;
  }
}

export interface HlsArgsOptions {
  dir: string;
  /** Target segment length (-hls_time); segments are cut at keyframes. */
  segmentSeconds: number;
  /** Segments in the playlist (sliding window). */
  listSize: number;
}

/**
 * HLS muxer arguments: MPEG-TS segments `seg_<n>.ts` numbered from the current time in ms (never
 * reused across restarts, so they may be cached as immutable), old ones deleted.
 */
export function hlsOutputArgs(o: HlsArgsOptions): string[] {
  // '%' in HLS_DIR would be read as a template by the segment name pattern.
  const segDir = o.dir.replace(/%/g, "%%");
  return [
    "-f",
    "hls",
    "-hls_time",
    String(o.segmentSeconds),
    "-hls_list_size",
    String(o.listSize),
    "-hls_delete_threshold",
    "2",
    "-hls_flags",
    "delete_segments+temp_file+independent_segments",
    "-hls_segment_type",
    "mpegts",
    "-start_number",
    String(Date.now()),
    "-hls_segment_filename",
    path.join(segDir, "seg_%d.ts"),
    ...whitelistArgs(["file"]),
    path.join(o.dir, PLAYLIST),
  ];
}

/** FLV to an rtmp(s):// URL, which may only use rtmp, rtmps, tcp and tls. */
export function rtmpOutputArgs(url: string): string[] {
  return ["-f", "flv", "-flvflags", "no_duration_filesize", ...whitelistArgs(["rtmp", "rtmps", "tcp", "tls"]), url];
}

/** Whether a video codec is copied (H.264) or transcoded. */
export function copiesVideo(codec: CodecName): boolean {
  return codec === "H264";
}

/**
 * Video encoding: H.264 copied; VP8/VP9 → libx264 veryfast/zerolatency with a keyframe every
 * `keyframeSeconds` and the first frame's size kept (browsers change resolution mid-stream; with
 * `-reinit_filter 0` on the input, later frames are scaled to it instead of breaking the encoder).
 */
export function videoCodecArgs(codec: CodecName, keyframeSeconds: number): string[] {
  if (copiesVideo(codec)) return ["-c:v", "copy"];
  return [
    // RTP video has no constant frame rate: keep each frame's own time (the default would
    // duplicate frames up to the stream's guessed rate). -vsync rather than -fps_mode: FFmpeg 4 too.
    "-vsync",
    "passthrough",
    "-vf",
    "scale=trunc(iw/2)*2:trunc(ih/2)*2",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-tune",
    "zerolatency",
    "-pix_fmt",
    "yuv420p",
    "-profile:v",
    "main",
    "-crf",
    "23",
    "-maxrate",
    "3000k",
    "-bufsize",
    "6000k",
    "-force_key_frames",
    `expr:gte(t,n_forced*${keyframeSeconds})`,
    "-sc_threshold",
    "0",
  ];
}

/** Opus → AAC (gaps filled with silence so audio stays on the video's timeline). */
export function audioCodecArgs(sampleRate: number): string[] {
  return ["-af", "aresample=async=1", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", String(sampleRate)];
}
