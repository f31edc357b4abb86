// What an ingest (or relay) source is, decided before anything starts (docs/bridges.md, "Ingest").
// Source URLs are untrusted input, checked by the one URL and file policy (policy.ts):
// - network sources: rtmp://, rtmps://, http(s)://….m3u8|.mp4|.flv, one line, a host, optionally
//   limited to INGEST_ALLOWED_HOSTS;
// - files: a path (relative to MEDIA_DIR, or absolute inside it) that resolves — symlinks followed —
//   to a regular media file under MEDIA_DIR; "..", ":" and every FFmpeg protocol prefix (file:,
//   concat:, subfile:, pipe:, data: …) are refused, and FFmpeg is handed "file:<real path>" so it
//   never interprets the name;
// - each source gets its own -protocol_whitelist for its input (e.g. rtmp,rtmps,tcp,tls: an HLS
//   playlist naming file: or concat: segments cannot read local files).
// Here the policy's verdicts become the API's messages, and a source becomes what FFmpeg opens.

import { fail } from "../errors.js";
import {
  checkUrl,
  fileType,
  HTTP_SOURCE_TYPES,
  MAX_URL_LENGTH,
  MEDIA_FILE_TYPES,
  resolveMediaFile,
  schemeAllowed,
  schemeOf,
  type FileProblem,
  type UrlProblem,
} from "./policy.js";

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
export function sourceRedactor(source: IngestSource, raw: string): (text: string) => string {
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

function urlMessage(problem: UrlProblem, host: string): string {
  switch (problem) {
    case "whitespace":
      return "invalid url: URLs must not contain whitespace";
    case "no_host":
      return "invalid url: no host";
    case "host_not_allowed":
      return `invalid url: host "${host.slice(0, 100)}" is not in INGEST_ALLOWED_HOSTS`;
    case "too_long":
      return `invalid url: longer than ${MAX_URL_LENGTH} characters`;
    case "control":
      return "invalid url: control characters";
    default:
      return "invalid url: cannot be parsed";
  }
}

function parseNetworkSource(raw: string, scheme: string, policy: SourcePolicy): IngestSource {
  const verdict = checkUrl(raw, "source", policy.allowedHosts);
  if (!verdict.ok) throw fail("invalid_input", urlMessage(verdict.problem, verdict.host ?? ""));
  const url = verdict.url;
  const display = maskSourceUrl(raw);
  if (scheme === "rtmp" || scheme === "rtmps") {
    // rtmp://host[:port]/app/stream: an application and a stream name.
    const segments = url.pathname.split("/").filter((s) => s !== "");
    if (segments.length < 2) throw fail("invalid_input", "invalid url: an RTMP URL needs an application and a stream name (rtmp://host/app/stream)");
    return { kind: "rtmp", input: raw, display, protocols: ["rtmp", "rtmps", "tcp", "tls"], live: true };
  }
  const ext = fileType(url.pathname);
  if (!HTTP_SOURCE_TYPES.includes(ext)) throw fail("invalid_input", "invalid url: http(s) sources must be .m3u8, .mp4 or .flv");
  // HLS segments come over the same protocols (crypto for AES-128 segments); never file: or concat:.
  if (ext === ".m3u8") return { kind: "hls", input: raw, display, protocols: ["http", "https", "tcp", "tls", "crypto"], live: true };
  return { kind: "http", input: raw, display, protocols: ["http", "https", "tcp", "tls"], live: false };
}

const FILE_MESSAGES: Record<FileProblem, (display: string) => string> = {
  colon: () => `invalid url: file paths must not contain ':' (${ACCEPTED})`,
  dot_segment: () => "invalid url: file paths must not contain '..'",
  outside: () => "invalid url: file paths must be under MEDIA_DIR",
  file_type: () => `invalid url: unsupported file type (${MEDIA_FILE_TYPES.join(", ")})`,
  missing: (display) => `invalid url: no such file under MEDIA_DIR: ${display.slice(0, 200)}`,
  not_regular: () => "invalid url: not a regular file",
};

async function resolveFileSource(raw: string, policy: SourcePolicy): Promise<IngestSource> {
  const file = await resolveMediaFile(raw, policy.mediaDir, MEDIA_FILE_TYPES);
  if (!file.ok) throw fail("invalid_input", FILE_MESSAGES[file.problem](file.display));
  return { kind: "file", input: `file:${file.real}`, display: file.display, protocols: ["file"], live: false };
}

/**
 * Checks an ingest source against the policy (throws "invalid_input" with the reason) and returns
 * what FFmpeg is to open. Nothing is started here.
 */
export async function resolveIngestSource(raw: unknown, policy: SourcePolicy): Promise<IngestSource> {
  if (typeof raw !== "string" || raw === "") throw fail("invalid_input", `"url" is required: ${ACCEPTED}`);
  if (raw.length > MAX_URL_LENGTH) throw fail("invalid_input", urlMessage("too_long", ""));
  if (/[\x00-\x1f\x7f]/.test(raw)) throw fail("invalid_input", urlMessage("control", ""));
  const scheme = schemeOf(raw);
  if (scheme === undefined) return resolveFileSource(raw, policy);
  if (!schemeAllowed(scheme, "source")) throw fail("invalid_input", `invalid url: "${scheme.slice(0, 20)}:" sources are not accepted; ${ACCEPTED}`);
  if (!raw.slice(scheme.length + 1).startsWith("//")) throw fail("invalid_input", `invalid url: expected ${scheme}://host/…`);
  return parseNetworkSource(raw, scheme, policy);
}
