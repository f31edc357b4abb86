// What a user- or operator-given URL or path may point at, for every bridge and hook. This module
// alone decides:
// - which schemes each use accepts (sources, watermark images, RTMP targets, callbacks);
// - which hosts a network source may be on: INGEST_ALLOWED_HOSTS, exact names, IP addresses or
//   "*.example.com" for its subdomains, one matching rule for ingest, relay sources and watermarks;
// - which local files may be read: a path relative to MEDIA_DIR (or absolute inside it) without
//   ".." or ":", that resolves, symlinks followed, to a regular file under MEDIA_DIR, of a known
//   file type.
// It answers with a verdict (and a reason code); the callers word their own error messages.
// Nothing here starts a process; FFmpeg's protocol whitelists are in protocols.ts.

import { realpath, stat } from "node:fs/promises";
import path from "node:path";

export const MAX_URL_LENGTH = 2048;

/** The schemes each use accepts, lower case, without ":". */
export const SCHEMES = {
  /** Ingest and relay sources (files aside). */
  source: ["rtmp", "rtmps", "http", "https"],
  /** Watermark images (files aside). */
  image: ["http", "https"],
  /** RTMP restreams, /start-stream sources and relay targets. */
  rtmp: ["rtmp", "rtmps"],
  /** Hook URLs and relay callbacks. */
  callback: ["http", "https"],
} as const satisfies Record<string, readonly string[]>;

export type UrlUse = keyof typeof SCHEMES;

/** Extensions of media files (and HTTP VOD paths) FFmpeg may read as a source. */
export const MEDIA_FILE_TYPES: readonly string[] = [".mp4", ".m4v", ".mov", ".flv", ".mkv", ".webm", ".ts"];
/** Extensions of http(s) sources: an HLS playlist, or a VOD file. */
export const HTTP_SOURCE_TYPES: readonly string[] = [".m3u8", ".mp4", ".flv"];
/** Extensions of watermark images. */
export const IMAGE_FILE_TYPES: readonly string[] = [".png", ".jpg", ".jpeg"];

/** The scheme of `raw` in lower case ("rtmp" for "RTMP://…"), or undefined when it has none. */
export function schemeOf(raw: string): string | undefined {
  return /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
}

export function schemeAllowed(scheme: string, use: UrlUse): boolean {
  return (SCHEMES[use] as readonly string[]).includes(scheme);
}

/** The lower-case extension of a path or of a URL's path (query and fragment ignored). */
export function fileType(p: string): string {
  return path.posix.extname(p.split(/[?#]/)[0] ?? "").toLowerCase();
}

// ---- hosts --------------------------------------------------------------------------------------

const HOST_NAME_RE = /^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/;
const HOST_IP_RE = /^\[?[0-9a-f:.]+\]?$/;

/** Whether `entry` (lower case) can be an allow-list entry: a host name, "*.name" or an IP address. */
export function isHostPattern(entry: string): boolean {
  return entry.length <= 253 && (HOST_NAME_RE.test(entry) || HOST_IP_RE.test(entry));
}

/**
 * Whether `hostname` is on the allow-list (always, when the list is empty). Case, a trailing dot
 * and IPv6 brackets do not matter; "*.example.com" covers its subdomains, not example.com itself.
 */
export function hostAllowed(hostname: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const h = hostname
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
  return allowed.some((entry) => {
    const e = entry.toLowerCase();
    if (e.startsWith("*.")) return h.endsWith(e.slice(1)) && h.length > e.length - 1;
    return h === e.replace(/^\[(.*)\]$/, "$1");
  });
}

// ---- network URLs -------------------------------------------------------------------------------

export type UrlProblem = "too_long" | "whitespace" | "control" | "scheme" | "unparsable" | "no_host" | "host_not_allowed";

/** `host`: the URL's host, once it could be parsed. */
export type UrlVerdict = { ok: true; url: URL } | { ok: false; problem: UrlProblem; host?: string };

/**
 * A URL for `use`: at most MAX_URL_LENGTH, one line without whitespace or control characters (no
 * librtmp-style "url key=value" options), a scheme of the use followed by "//", a host, and that
 * host on `allowedHosts` (empty: any host).
 */
export function checkUrl(raw: string, use: UrlUse, allowedHosts: readonly string[] = []): UrlVerdict {
  if (raw.length > MAX_URL_LENGTH) return { ok: false, problem: "too_long" };
  if (/[\x00-\x1f\x7f]/.test(raw)) return { ok: false, problem: "control" };
  if (/\s/.test(raw)) return { ok: false, problem: "whitespace" };
  const scheme = schemeOf(raw);
  if (scheme === undefined || !schemeAllowed(scheme, use) || !raw.slice(scheme.length + 1).startsWith("//")) return { ok: false, problem: "scheme" };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, problem: "unparsable" };
  }
  if (url.hostname === "") return { ok: false, problem: "no_host" };
  if (!hostAllowed(url.hostname, allowedHosts)) return { ok: false, problem: "host_not_allowed", host: url.hostname };
  return { ok: true, url };
}

// ---- files under MEDIA_DIR ----------------------------------------------------------------------

export type FileProblem = "colon" | "dot_segment" | "outside" | "file_type" | "missing" | "not_regular";

export type FileVerdict =
  /** `real`: the resolved path (symlinks followed); `display`: the path as given, relative to MEDIA_DIR. */
  { ok: true; real: string; display: string } | { ok: false; problem: FileProblem; display: string };

function within(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}

/**
 * Resolves `raw` under `mediaDir`: no ':' (no FFmpeg protocol prefix can hide in a file name), no
 * '..' segment, inside the directory both as written and once symlinks are followed, one of
 * `types`, and a regular file.
 */
export async function resolveMediaFile(raw: string, mediaDir: string, types: readonly string[]): Promise<FileVerdict> {
  const root = path.resolve(mediaDir);
  const abs = path.isAbsolute(raw) ? path.resolve(raw) : path.resolve(root, raw);
  const display = path.relative(root, abs);
  if (raw.includes(":")) return { ok: false, problem: "colon", display };
  if (raw.split(/[\\/]/).includes("..")) return { ok: false, problem: "dot_segment", display };
  if (!within(root, abs)) return { ok: false, problem: "outside", display };
  if (!types.includes(path.extname(abs).toLowerCase())) return { ok: false, problem: "file_type", display };
  let real: string;
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    real = await realpath(abs);
  } catch {
    return { ok: false, problem: "missing", display };
  }
  // A symlink inside MEDIA_DIR must not lead out of it.
  if (!within(realRoot, real)) return { ok: false, problem: "outside", display };
  const st = await stat(real).catch(() => undefined);
  if (!st?.isFile()) return { ok: false, problem: "not_regular", display };
  return { ok: true, real, display };
}
