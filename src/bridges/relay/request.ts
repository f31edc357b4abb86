// The body of the forwardRequest API (docs/bridges.md, "Relay tasks"), checked field by field into
// typed commands. Nothing here touches the disk or starts anything: sources are resolved against
// MEDIA_DIR later (relay/tasks.ts); this decides only whether the request makes sense.

import { ROOM_NAME_RE } from "../../config.js";
import { fail } from "../../errors.js";
import { checkUrl, MAX_URL_LENGTH } from "../policy.js";
import { parseRtmpUrl } from "../urls.js";

const bad = (message: string): never => {
  throw fail("invalid_input", message);
};

export type RelayCmd = "1" | "2" | "3" | "5";

/** A span of a file in seconds from its start; `to` undefined = to the end. */
export interface TimeWindow {
  from: number;
  to?: number;
}

/** Absolute wall-clock window (ms since the epoch, UTC), mapped through the file's creation_time. */
export interface AbsWindow {
  fromMs: number;
  toMs: number;
}

export interface RelaySource {
  url: string;
  /** relofftime: takes precedence over absolute windows. */
  windows?: TimeWindow[];
  absWindows?: AbsWindow[];
}

export type Gravity = "TOP_LEFT" | "TOP_CENTER" | "TOP_RIGHT" | "CENTER_LEFT" | "CENTER" | "CENTER_RIGHT" | "BOTTOM_LEFT" | "BOTTOM_CENTER" | "BOTTOM_RIGHT";
const GRAVITIES: readonly Gravity[] = [
  "TOP_LEFT",
  "TOP_CENTER",
  "TOP_RIGHT",
  "CENTER_LEFT",
  "CENTER",
  "CENTER_RIGHT",
  "BOTTOM_LEFT",
  "BOTTOM_CENTER",
  "BOTTOM_RIGHT",
];

export interface Watermark {
  image: string;
  gravity: Gravity;
}

export type RelayTarget = { kind: "rtmp"; url: string } | { kind: "room"; room: string; url: string };

export interface RelayForward {
  target: RelayTarget;
  /** cmd 5: continue on this target instead. */
  resetTo?: RelayTarget;
}

export interface Transcode {
  /** kbit/s */
  bps?: number;
  width?: number;
  height?: number;
  fps?: number;
  vcodec: string;
  acodec?: string;
}

export interface RelayTaskSpec {
  id: string;
  src: RelaySource[];
  forward: RelayForward[];
  /** Passes over the list; undefined = until stopped. */
  loop?: number;
  /** 0-based first file of the first pass. */
  index: number;
  callBackFileInfo: boolean;
  waitCrtUrlFinish: boolean;
  startMs?: number;
  endMs?: number;
  fops?: Transcode;
  watermark?: Watermark;
}

export interface RelayCommand {
  cmd: RelayCmd;
  callbackUrl?: string;
  tasks: RelayTaskSpec[];
}

export interface RequestLimits {
  /** `end` must be at least this long after `start` and after now (RELAY_MIN_WINDOW_SECONDS, 5 minutes by default). */
  minWindowMs: number;
  now: number;
}

const VIDEO_CODECS: Record<string, { rtmp: boolean; room: boolean }> = {
  libx264: { rtmp: true, room: true },
  libx265: { rtmp: false, room: false },
  libvpx: { rtmp: false, room: false },
  "libvpx-vp9": { rtmp: false, room: false },
};
/** libfaac is long gone from FFmpeg; its native aac encoder stands in. */
const AUDIO_CODECS: Record<string, { ffmpeg: string; rtmp: boolean; room: boolean }> = {
  aac: { ffmpeg: "aac", rtmp: true, room: false },
  libfaac: { ffmpeg: "aac", rtmp: true, room: false },
  libmp3lame: { ffmpeg: "libmp3lame", rtmp: true, room: false },
  libvorbis: { ffmpeg: "libvorbis", rtmp: false, room: false },
  libopus: { ffmpeg: "libopus", rtmp: false, room: true },
};

export function ffmpegAudioCodec(name: string): string {
  return AUDIO_CODECS[name]?.ffmpeg ?? name;
}

const MAX_LIST = 20;
const MAX_SRC = 100;
const MAX_FORWARD = 10;

function str(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

function intField(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const s = str(v);
  if (s === undefined || !/^\d{1,9}$/.test(s.trim())) bad(`${name} must be an integer`);
  const n = Number(s!.trim());
  if (n < min || n > max) bad(`${name} must be between ${min} and ${max}`);
  return n;
}

function flag(v: unknown, name: string): boolean {
  const n = intField(v, name, 0, 1);
  return n === 1;
}

/** "300-500;600-700" → windows in seconds. */
export function parseRelOffTime(raw: string): TimeWindow[] {
  const out: TimeWindow[] = [];
  for (const part of raw.split(";")) {
    const m = /^\s*(\d{1,7}(?:\.\d{1,3})?)\s*-\s*(\d{1,7}(?:\.\d{1,3})?)\s*$/.exec(part);
    if (!m) bad(`relofftime "${raw.slice(0, 60)}": expected seconds like 300-500, several separated by ';'`);
    const from = Number(m![1]);
    const to = Number(m![2]);
    if (!(to > from)) bad(`relofftime "${part.trim()}": the end must be after the start`);
    out.push({ from, to });
  }
  return out;
}

/** yyyymmddHHMMSS (UTC) → ms, or undefined when it is not a real date. */
export function parseStamp(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) return undefined;
  return ms;
}

export function parseAbsOffTime(raw: string): AbsWindow[] {
  const out: AbsWindow[] = [];
  for (const part of raw.split(";")) {
    const m = /^\s*(\d{14})\s*-\s*(\d{14})\s*$/.exec(part);
    const fromMs = m ? parseStamp(m[1]!) : undefined;
    const toMs = m ? parseStamp(m[2]!) : undefined;
    if (fromMs === undefined || toMs === undefined) bad(`absofftime "${part.trim().slice(0, 60)}": expected yyyymmddHHMMSS-yyyymmddHHMMSS`);
    if (!(toMs! > fromMs!)) bad(`absofftime "${part.trim()}": the end must be after the start`);
    out.push({ fromMs: fromMs!, toMs: toMs! });
  }
  return out;
}

/** rtmp://… or room:{name}. */
export function parseTarget(raw: unknown, field: string): RelayTarget {
  if (typeof raw !== "string" || raw === "") bad(`${field} is required`);
  const s = raw as string;
  if (s.startsWith("room:")) {
    const room = s.slice(5);
    if (!ROOM_NAME_RE.test(room)) bad(`${field} "room:${room.slice(0, 80)}": invalid room name`);
    return { kind: "room", room, url: s };
  }
  const url = parseRtmpUrl(s);
  if (url === undefined) bad(`${field} must be an rtmp:// or rtmps:// URL, or room:{name}`);
  return { kind: "rtmp", url: url! };
}

/** 13-digit milliseconds. */
function msField(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const s = str(v);
  if (s === undefined || !/^\d{13}$/.test(s)) bad(`${name} must be a 13-digit Unix time in milliseconds`);
  return Number(s);
}

function parseFops(raw: unknown): Transcode | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "object" || Array.isArray(raw)) bad("fops must be an object");
  const f = raw as Record<string, unknown>;
  const bps = intField(f.bps, "fops.bps (kbit/s)", 50, 50_000);
  let width: number | undefined;
  let height: number | undefined;
  if (f.res !== undefined && f.res !== "") {
    const m = /^(\d{2,4})x(\d{2,4})$/.exec(str(f.res) ?? "");
    if (!m) bad(`fops.res "${String(f.res).slice(0, 40)}" must be WIDTHxHEIGHT, e.g. 1280x720 (is it swapped with fps?)`);
    width = Number(m![1]);
    height = Number(m![2]);
    if (width < 16 || width > 7680 || height < 16 || height > 4320) bad("fops.res must be between 16x16 and 7680x4320");
  }
  let fps: number | undefined;
  if (f.fps !== undefined && f.fps !== "") {
    const s = str(f.fps) ?? "";
    if (!/^\d{1,3}(\.\d{1,3})?$/.test(s)) bad(`fops.fps "${s.slice(0, 40)}" must be a frame rate such as 25 (is it swapped with res?)`);
    fps = Number(s);
    if (fps < 1 || fps > 120) bad("fops.fps must be between 1 and 120");
  }
  const vcodec = str(f.vcodec)?.trim() || undefined;
  const acodec = str(f.acodec)?.trim().toLowerCase() || undefined;
  if ((bps !== undefined || width !== undefined || fps !== undefined || acodec !== undefined) && vcodec === undefined) {
    bad("fops: transcoding values need fops.vcodec");
  }
  if (vcodec === undefined) return undefined;
  if (!(vcodec in VIDEO_CODECS)) bad(`fops.vcodec "${vcodec.slice(0, 40)}" is not supported (${Object.keys(VIDEO_CODECS).join(", ")})`);
  if (acodec !== undefined && !(acodec in AUDIO_CODECS)) bad(`fops.acodec "${acodec.slice(0, 40)}" is not supported (${Object.keys(AUDIO_CODECS).join(", ")})`);
  return { bps, width, height, fps, vcodec, acodec };
}

function checkCodecsFor(target: RelayTarget, fops: Transcode | undefined, where: string): void {
  if (!fops) return;
  const v = VIDEO_CODECS[fops.vcodec]!;
  if (!v[target.kind]) {
    bad(
      `${where}: ${fops.vcodec} cannot be carried ${target.kind === "rtmp" ? "over RTMP (FLV carries H.264: use libx264)" : "into a WebRTC room (use libx264)"}`,
    );
  }
  if (fops.acodec !== undefined && !AUDIO_CODECS[fops.acodec]![target.kind]) {
    bad(
      `${where}: ${fops.acodec} cannot be carried ${target.kind === "rtmp" ? "over RTMP (use aac or libmp3lame)" : "into a WebRTC room (its audio is Opus: use libopus or leave acodec out)"}`,
    );
  }
}

function parseSources(raw: unknown, where: string, required: boolean): { src: RelaySource[]; watermark?: Watermark } {
  if (!Array.isArray(raw)) {
    if (required) bad(`${where}.src must be a list`);
    return { src: [] };
  }
  if (raw.length > MAX_SRC) bad(`${where}.src: at most ${MAX_SRC} files`);
  const src: RelaySource[] = [];
  let watermark: Watermark | undefined;
  raw.forEach((item, i) => {
    const at = `${where}.src[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) bad(`${at} must be an object`);
    const o = item as Record<string, unknown>;
    const url = typeof o.url === "string" ? o.url.trim() : "";
    if (url === "") {
      if (required) bad(`${at}.url is required`);
      return;
    }
    if (url.length > MAX_URL_LENGTH) bad(`${at}.url is longer than ${MAX_URL_LENGTH} characters`);
    const s: RelaySource = { url };
    const rel = str(o.relofftime)?.trim();
    const abs = str(o.absofftime)?.trim();
    if (rel) s.windows = parseRelOffTime(rel);
    if (abs) s.absWindows = parseAbsOffTime(abs);
    const wm = str(o.wmimage)?.trim();
    const grav = str(o.wmgravity)?.trim();
    if (grav && !wm) bad(`${at}.wmgravity needs wmimage`);
    if (wm) {
      const gravity = (grav || "TOP_LEFT").toUpperCase() as Gravity;
      if (!GRAVITIES.includes(gravity)) bad(`${at}.wmgravity must be one of ${GRAVITIES.join(", ")}`);
      if (wm.length > MAX_URL_LENGTH) bad(`${at}.wmimage is longer than ${MAX_URL_LENGTH} characters`);
      // One FFmpeg renders the whole list, so one watermark covers it.
      if (watermark && (watermark.image !== wm || watermark.gravity !== gravity)) bad(`${where}: every file of a task must use the same watermark`);
      watermark = { image: wm, gravity };
    }
    src.push(s);
  });
  if (required && src.length === 0) bad(`${where}.src needs at least one url`);
  return { src, watermark };
}

function parseForwards(raw: unknown, where: string, allowReset: boolean): RelayForward[] {
  if (!Array.isArray(raw) || raw.length === 0) bad(`${where}.forward must be a non-empty list`);
  const list = raw as unknown[];
  if (list.length > MAX_FORWARD) bad(`${where}.forward: at most ${MAX_FORWARD} targets`);
  const seen = new Set<string>();
  return list.map((item, i) => {
    const at = `${where}.forward[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) bad(`${at} must be an object`);
    const o = item as Record<string, unknown>;
    const target = parseTarget(o.url, `${at}.url`);
    if (seen.has(target.url)) bad(`${at}.url is listed twice`);
    seen.add(target.url);
    const fwd: RelayForward = { target };
    if (o.resetUrl !== undefined && o.resetUrl !== "") {
      if (!allowReset) bad(`${at}.resetUrl is only accepted with cmd 5`);
      fwd.resetTo = parseTarget(o.resetUrl, `${at}.resetUrl`);
    }
    return fwd;
  });
}

function parseCallbackUrl(raw: unknown): string | undefined {
  if (raw === undefined || raw === null || raw === "") return undefined;
  if (typeof raw !== "string" || !checkUrl(raw, "callback").ok) bad("transcallbackurl must be an http(s) URL");
  return raw as string;
}

const ID_RE = /^[\x21-\x7e]{1,128}$/;

/** The request body → a command, or an "invalid_input" error saying what is wrong. */
export function parseRelayRequest(body: unknown, limits: RequestLimits): RelayCommand {
  if (typeof body !== "object" || body === null || Array.isArray(body)) bad("the body must be a JSON object");
  const b = body as Record<string, unknown>;
  const cmd = str(b.cmd)?.trim();
  if (cmd === undefined) bad("cmd is required (1 start, 2 stop, 3 update the file list, 5 resume)");
  if (cmd !== "1" && cmd !== "2" && cmd !== "3" && cmd !== "5") bad(`cmd "${cmd!.slice(0, 10)}" is not one of 1, 2, 3, 5`);
  if (b.type !== "video") bad('type must be "video"');
  const callbackUrl = parseCallbackUrl(b.transcallbackurl);
  if (!Array.isArray(b.list) || b.list.length === 0) bad("list must be a non-empty list");
  const list = b.list as unknown[];
  if (list.length > MAX_LIST) bad(`list: at most ${MAX_LIST} tasks per call`);
  const ids = new Set<string>();
  const tasks = list.map((item, i): RelayTaskSpec => {
    const where = `list[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) bad(`${where} must be an object`);
    const t = item as Record<string, unknown>;
    const id = str(t.id);
    if (id === undefined || !ID_RE.test(id)) bad(`${where}.id is required (1–128 visible ASCII characters)`);
    if (ids.has(id!)) bad(`${where}.id "${id}" appears twice`);
    ids.add(id!);
    if (cmd === "5" && (t.fops !== undefined || t.extendParam !== undefined)) bad(`${where}: fops and extendParam are not accepted with cmd 5`);
    const { src, watermark } = parseSources(t.src, where, cmd !== "2");
    const forward = parseForwards(t.forward, where, cmd === "5");
    const ext = t.extendParam;
    if (ext !== undefined && (typeof ext !== "object" || ext === null || Array.isArray(ext))) bad(`${where}.extendParam must be an object`);
    const e = (ext ?? {}) as Record<string, unknown>;
    const loop = intField(e.loop, `${where}.extendParam.loop`, 1, 1_000_000);
    const index1 = intField(e.index, `${where}.extendParam.index`, 1, MAX_SRC) ?? 1;
    if (cmd !== "2" && index1 > src.length) bad(`${where}.extendParam.index ${index1} is past the ${src.length} file(s) of src`);
    const fops = parseFops(t.fops);
    if (watermark && fops && fops.vcodec !== "libx264") bad(`${where}: a watermark needs fops.vcodec libx264`);
    for (const f of forward) {
      checkCodecsFor(f.target, fops, `${where}.forward`);
      if (f.resetTo) checkCodecsFor(f.resetTo, fops, `${where}.forward`);
    }
    const startMs = msField(t.start, `${where}.start`);
    const endMs = msField(t.end, `${where}.end`);
    if (endMs !== undefined) {
      const from = Math.max(startMs ?? limits.now, limits.now);
      const minutes = Math.round(limits.minWindowMs / 60_000);
      const span = limits.minWindowMs >= 60_000 ? `${minutes} minute(s)` : `${Math.round(limits.minWindowMs / 1000)} s`;
      if (startMs !== undefined && endMs < startMs + limits.minWindowMs) bad(`${where}.end must be at least ${span} after start`);
      if (endMs < from + limits.minWindowMs) bad(`${where}.end must be at least ${span} after now`);
    }
    return {
      id: id!,
      src,
      forward,
      loop,
      index: index1 - 1,
      callBackFileInfo: flag(e.callBackFileInfo, `${where}.extendParam.callBackFileInfo`),
      waitCrtUrlFinish: flag(e.waitCrtUrlFinish, `${where}.extendParam.waitCrtUrlFinish`),
      startMs,
      endMs,
      fops,
      watermark,
    };
  });
  return { cmd: cmd as RelayCmd, callbackUrl, tasks };
}
