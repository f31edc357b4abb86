// RTMP target URLs for FFmpeg: accepted under the "rtmp" use of the URL policy (policy.ts: only
// rtmp:// and rtmps://, one line, a host), with no shell or FFmpeg option tricks (the URL is one
// element of an argument array, and the job's protocol whitelist keeps FFmpeg on
// rtmp/rtmps/tcp/tls whatever the URL says). Stream keys are secrets: masked in listings and logs.

import { checkUrl } from "./policy.js";

/** The URL as given when it is a usable rtmp:// or rtmps:// URL with a host and a path, else undefined. */
export function parseRtmpUrl(raw: unknown): string | undefined {
  if (typeof raw !== "string" || raw.length === 0) return undefined;
  const verdict = checkUrl(raw, "rtmp");
  if (!verdict.ok || verdict.url.pathname.length < 2) return undefined;
  return raw;
}

/** `rtmp://host/app/streamkey` → `rtmp://host/app/****` (credentials and query masked too). */
export function maskRtmpUrl(raw: string): string {
  const m = /^(rtmps?:\/\/)([^/]*)(\/.*)?$/i.exec(raw);
  if (!m) return "****";
  const authority = m[2].includes("@") ? `****@${m[2].slice(m[2].lastIndexOf("@") + 1)}` : m[2];
  const pathPart = (m[3] ?? "").replace(/[?#].*$/, "");
  const cut = pathPart.lastIndexOf("/");
  // The first path segment is the application; anything after it is the key.
  const segments = pathPart.split("/").filter((s) => s !== "");
  const masked = segments.length <= 1 ? pathPart : `${pathPart.slice(0, cut)}/****`;
  return `${m[1]}${authority}${masked}`;
}

/** A redactor for log lines and errors that replaces the URL (and its key) with the masked form. */
export function urlRedactor(raw: string): (text: string) => string {
  const masked = maskRtmpUrl(raw);
  const key =
    raw
      .replace(/[?#].*$/, "")
      .split("/")
      .pop() ?? "";
  return (text) => {
    let out = text.split(raw).join(masked);
    // FFmpeg sometimes prints the key alone or a rebuilt URL (e.g. "playpath").
    if (key.length >= 4) out = out.split(key).join("****");
    return out;
  };
}
