// Hostile room names, file paths and JSON bodies, each with what the server should make of it
// where that can be known in advance (the oracle), and nothing where it cannot.
import type { Rng } from "./prng.js";

export const ROOM_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/** Percent-encodes every byte of the UTF-8 form (lone surrogates become U+FFFD, as on the wire). */
export function pctAll(s: string, upper = true): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) out += "%" + b.toString(16).padStart(2, "0")[upper ? "toUpperCase" : "toLowerCase"]();
  return out;
}

/** Percent-encodes what is not unreserved, leaving the rest as is (encodeURIComponent without throwing). */
export function pct(s: string): string {
  let out = "";
  for (const ch of s) {
    if (/^[A-Za-z0-9_.~-]$/.test(ch)) out += ch;
    else out += pctAll(ch);
  }
  return out;
}

export function validName(rng: Rng, min = 1, max = 64): string {
  return rng.string(rng.int(min, max), NAME_CHARS);
}

export interface FuzzName {
  /** As it goes into the path. */
  raw: string;
  /**
   * What the server decodes when the path routes to the intended endpoint; undefined when that is
   * not knowable here (raw separators, broken escapes).
   */
  decoded?: string;
  /** A broken percent-escape: the server refuses the URL itself (400). */
  badEscape?: boolean;
}

/** Room names: valid ones (some escaped), and every way of being invalid. */
export function fuzzRoomName(rng: Rng): FuzzName {
  const kind = rng.weighted<string>([
    [10, "valid"],
    [4, "valid-escaped"],
    [5, "too-long"],
    [8, "unicode"],
    [4, "nul"],
    [6, "slash"],
    [4, "dots"],
    [4, "double"],
    [4, "bad-escape"],
    [6, "raw-special"],
    [5, "punct"],
    [2, "empty"],
    [2, "huge"],
  ]);
  switch (kind) {
    case "valid": {
      const n = validName(rng);
      return { raw: n, decoded: n };
    }
    case "valid-escaped": {
      const n = validName(rng);
      const raw = [...n].map((c) => (rng.chance(0.3) ? pctAll(c, rng.chance(0.5)) : c)).join("");
      return { raw, decoded: n };
    }
    case "too-long": {
      const n = validName(rng, 65, rng.chance(0.8) ? 200 : 5000);
      return { raw: n, decoded: n };
    }
    case "unicode": {
      const s = rng.chance(0.5) ? validName(rng, 0, 10) + rng.unicode(rng.int(1, 10)) + validName(rng, 0, 10) : rng.unicode(rng.int(1, 30));
      const raw = pct(s);
      return { raw, decoded: Buffer.from(s, "utf8").toString("utf8") };
    }
    case "nul": {
      const s = validName(rng, 0, 10) + "\0" + validName(rng, 0, 10);
      return { raw: pct(s), decoded: s };
    }
    case "slash": {
      const s = rng.pick(["a/b", "/", "../x", "..\\x", "\\", "x/..", "/etc/passwd", "..%2F", "a\\b"]);
      const raw = rng.chance(0.5) ? pct(s) : pctAll(s, rng.chance(0.5));
      return { raw, decoded: s };
    }
    case "dots": {
      const s = rng.pick([".", "..", "...", ".x", "x.", "a.b"]);
      if (rng.chance(0.5)) return { raw: pctAll(s), decoded: s };
      // Raw dot segments: the server does not normalise them, but say nothing about the route.
      return { raw: s };
    }
    case "double": {
      const s = rng.pick(["%2F", "%2e%2e", "%00", "%41", "%25", "%2e%2e%2f"]);
      return { raw: pctAll(s), decoded: s };
    }
    case "bad-escape":
      // "_" after the escape: a name character there could complete it ("%4" + "a").
      return {
        raw:
          validName(rng, 0, 5) + rng.pick(["%", "%z", "%zz", "%4", "%e0%a4", "%c0%ae", "%ff", "%80", "%ed%a0%80", "%f4%90%80%80"]) + "_" + validName(rng, 0, 5),
        badEscape: true,
      };
    case "raw-special":
      // Unencoded characters that may break the request line or the route: no oracle.
      return { raw: validName(rng, 0, 5) + rng.pick([" ", "?", "#", "/", "\\", "\t", "\0", "\r", "\n", "é", "\u2603", "\x7f", "\xff"]) + validName(rng, 0, 5) };
    case "punct": {
      const s = validName(rng, 0, 8) + rng.pick([";", ":", "@", "+", "*", "'", "!", "$", "&", "=", ",", "(", ")", "~", "."]) + validName(rng, 0, 8);
      return { raw: s, decoded: s };
    }
    case "empty":
      return { raw: "" };
    default: {
      // Over node's header size: the request line alone is too large.
      const n = validName(rng, 20_000, 70_000);
      return { raw: n };
    }
  }
}

// ---- paths under the file routes ------------------------------------------------------------------

const PIECES = [
  "..",
  ".",
  "%2e%2e",
  "%2E%2E",
  ".%2e",
  "%2e.",
  "%252e%252e",
  "%25252e%25252e",
  "..%2f",
  "..%2F",
  "..%5c",
  "..%5C",
  "%2f",
  "%5c",
  "%00",
  "%c0%ae%c0%ae",
  "%c0%af",
  "%e0%80%ae",
  "%u002e%u002e",
  "\\",
  "",
  "canary.txt",
  "secret",
  "records",
  "hls",
  "web",
  "live",
  "demo_video0_1710123456.ivf",
  "demo_audio0_1710123456.ogg",
  "demo_1710123456.webm",
  "stream.m3u8",
  "seg_1.ts",
  "index.html",
  ".env",
  "etc",
  "passwd",
  "%2fetc%2fpasswd",
  "hls.min.mjs",
  "package.json",
  "..%252f",
  "%2e%2e%2f%2e%2e%2f",
  "....//",
  "..;",
  "%3f",
  "%23",
];
const PREFIXES = [
  "/records/",
  "/records/",
  "/records/",
  "/hls/",
  "/hls/",
  "/hls/live/",
  "/",
  "/vendor/hls/",
  "/records//",
  "/hls//",
  "/records/./",
  "/web/",
  "/api/records/",
];
const SEPARATORS = ["/", "/", "/", "%2f", "%2F", "\\", "%5c", "", "//", "/./"];
const SUFFIXES = ["", "", "", "", "%00", "%00.ivf", "%00.m3u8", "?x=1", "?token=x", "#frag", ";x=1", "/", "%20", ".", "~", "::$DATA"];

export interface FuzzPath {
  path: string;
  /** Range header to send, if any. */
  range?: string;
}

/**
 * A path meant to get out of RECORD_DIR / HLS_DIR / WEB_DIR / the hls.js package, or to look like
 * it might; now and then one of `legit` (paths of files that are served) with a query or a Range.
 */
export function fuzzFilePath(rng: Rng, root: string, legit: readonly string[]): FuzzPath {
  const range = rng.chance(0.15)
    ? rng.pick(["bytes=0-3", "bytes=-1", "bytes=5-", "bytes=999999-", "bytes=3-1", "bytes=0-0,2-3", "bytes=abc", "items=0-1", `bytes=0-${"9".repeat(40)}`])
    : undefined;
  if (rng.chance(0.1)) return { path: rng.pick(legit) + rng.pick(["", "", "?x=1", "?token=abc", "?token=", "#x", "?a=%00"]), range };
  const prefix = rng.pick(PREFIXES);
  const n = rng.int(1, 6);
  let p = "";
  for (let i = 0; i < n; i++) {
    const piece = rng.weighted<string>([
      [20, rng.pick(PIECES)],
      [2, pct(root)],
      [1, pctAll(root + "/canary.txt")],
      [2, rng.chance(0.5) ? pct(rng.unicode(rng.int(1, 8))) : rng.unicode(rng.int(1, 4))],
      [
        1,
        "x".repeat(
          rng.weighted<number>([
            [5, rng.int(100, 300)],
            [1, rng.int(5_000, 20_000)],
            [1, rng.int(70_000, 90_000)],
          ]),
        ),
      ],
      [2, pctAll(rng.pick(["..", "../", "..\\", "/", "\0", "../canary.txt", "../secret/canary.txt"]))],
      [1, pct(pctAll(rng.pick(["../", "..", "/canary.txt"])))],
    ]);
    p += (i === 0 ? "" : rng.pick(SEPARATORS)) + piece;
  }
  return { path: prefix + p + rng.pick(SUFFIXES), range };
}

// ---- JSON bodies ----------------------------------------------------------------------------------

export interface FuzzBody {
  body?: Buffer;
  contentType?: string;
  /**
   * Body and content type that fastify's JSON parser takes as they are (a UTF-8 JSON value without
   * __proto__ / constructor.prototype, application/json): the request reaches the route.
   */
  parses: boolean;
}

function randomJson(rng: Rng, depth: number): unknown {
  const k = depth <= 0 ? rng.int(0, 4) : rng.int(0, 6);
  switch (k) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, rng.int(-1e9, 1e9)]);
    case 3:
      return rng.pick([
        "",
        "rtmp://127.0.0.1:1/live/x",
        "rtmps://127.0.0.1:1/a/b",
        "http://127.0.0.1:1/x.m3u8",
        "file:///etc/passwd",
        "../../etc/passwd",
        "x".repeat(rng.int(0, 5000)),
        rng.unicode(rng.int(0, 40)),
        "\0",
        validName(rng),
      ]);
    case 4:
      return rng.unicode(rng.int(0, 10));
    case 5: {
      const n = rng.int(0, 6);
      return Array.from({ length: n }, () => randomJson(rng, depth - 1));
    }
    default: {
      const o: Record<string, unknown> = {};
      const n = rng.int(0, 6);
      const keys = [
        "url",
        "streamId",
        "rtmpUrl",
        "loop",
        "id",
        "cmd",
        "list",
        "room",
        "token",
        "permissions",
        "a",
        "",
        "x".repeat(300),
        "\u0000",
        "\u2603",
        "toString",
        "hasOwnProperty",
        "valueOf",
      ];
      for (let i = 0; i < n; i++) o[rng.pick(keys)] = randomJson(rng, depth - 1);
      return o;
    }
  }
}

/** Route-shaped bodies: the fields a route reads, with values of the right and wrong kinds. */
function shapedJson(rng: Rng): unknown {
  const value = () =>
    rng.weighted<unknown>([
      [
        4,
        rng.pick([
          "rtmp://127.0.0.1:1/live/key",
          "rtmps://127.0.0.1:1/live/key",
          "rtmp://127.0.0.1:1/",
          "rtmp://",
          "rtmp:///x",
          "RTMP://127.0.0.1:1/a/b",
          "rtmp://[::1]:1/a/b",
          "rtmp://user:pw@127.0.0.1:1/a/b",
          "rtmp://127.0.0.1:99999/a/b",
          "http://127.0.0.1:1/a",
          "srt://127.0.0.1:1",
          " rtmp://127.0.0.1:1/a/b",
          "rtmp://127.0.0.1:1/a b",
          "rtmp://127.0.0.1:1/a\nb",
          "rtmp://127.0.0.1:1/a/b?x=-i /etc/passwd",
        ]),
      ],
      [3, validName(rng)],
      [2, rng.pick(["../x", "a/b", "", "x".repeat(65), "\0", "-f", "-i"])],
      [2, randomJson(rng, 1)],
    ]);
  const o: Record<string, unknown> = {};
  for (const k of ["url", "streamId", "rtmpUrl", "loop", "id"]) if (rng.chance(0.6)) o[k] = value();
  // The relay API's fields (docs/bridges.md, "Relay tasks"), some of them well-formed.
  if (rng.chance(0.3)) {
    o.cmd = rng.pick(["1", "2", "3", "5", "4", 1, "", null]);
    o.type = rng.pick(["video", "audio", 1]);
    const item = () => ({
      id: rng.chance(0.8) ? validName(rng) : value(),
      src: rng.chance(0.8)
        ? [
            {
              url: rng.pick(["a.mp4", "../a.mp4", "/etc/passwd", "file:///etc/passwd", "concat:a.mp4|b.mp4", "http://127.0.0.1:1/a.mp4"]),
              relofftime: rng.chance(0.3) ? rng.pick(["300-500", "5-1", "x"]) : undefined,
            },
          ]
        : value(),
      forward: rng.chance(0.8) ? [{ url: rng.pick(["rtmp://127.0.0.1:1/live/x", "room:x", "room:../x", "file:///tmp/x"]) }] : value(),
      extendParam: rng.chance(0.3) ? { loop: rng.pick(["1", "0", "-1", "x"]), index: rng.pick(["1", "9", "0"]) } : undefined,
      fops: rng.chance(0.2)
        ? { res: rng.pick(["25", "1280x720"]), fps: rng.pick(["25", "1280x720"]), vcodec: rng.pick(["libx264", "libx265", "x"]) }
        : undefined,
      start: rng.chance(0.2) ? rng.pick(["1540216800000", "x", String(Date.now() + 1e6)]) : undefined,
    });
    o.list = rng.chance(0.9) ? Array.from({ length: rng.int(0, 3) }, item) : value();
  }
  return o;
}

function deepNesting(rng: Rng): string {
  const n = rng.weighted<number>([
    [3, rng.int(50, 500)],
    [2, rng.int(5_000, 20_000)],
    [1, rng.int(100_000, 400_000)],
  ]);
  const open = rng.pick(["[", '{"a":']);
  const close = open === "[" ? "]" : "}";
  return open.repeat(n) + (rng.chance(0.5) ? '{"__proto__":{"x":1}}' : "1") + close.repeat(n);
}

function mutateText(rng: Rng, s: string): string {
  const n = rng.int(1, 4);
  for (let i = 0; i < n; i++) {
    const at = rng.int(0, s.length);
    switch (rng.int(0, 4)) {
      case 0:
        s = s.slice(0, at);
        break;
      case 1:
        s =
          s.slice(0, at) +
          rng.pick(["'", '"', "\\", "}", "]", ",", ":", "\0", "NaN", "Infinity", "/*x*/", "\ufeff", "\ud800", "\n", "undefined"]) +
          s.slice(at);
        break;
      case 2:
        s = s.slice(0, at) + s.slice(at + rng.int(1, 5));
        break;
      case 3:
        s = s.slice(0, at) + String.fromCharCode(rng.int(0, 255)) + s.slice(at + 1);
        break;
      default:
        s = s + rng.pick(["x", "}", " ", "\n", "{}", "[]"]);
    }
  }
  return s;
}

const JSON_TYPES: readonly (readonly [number, string | undefined])[] = [
  [60, "application/json"],
  [5, "application/json; charset=utf-8"],
  [3, "Application/JSON"],
  [3, "application/json; charset=utf-16"],
  [2, "application/json; charset=latin1"],
  [2, 'application/json; charset="utf-8"'],
  [3, "text/plain"],
  [3, "application/x-www-form-urlencoded"],
  [2, "multipart/form-data; boundary=x"],
  [2, "application/json-patch+json"],
  [2, "application/sdp"],
  [3, undefined],
  [2, ""],
  [2, "*/*"],
  [1, "application/json;" + "x".repeat(5000)],
  [1, "\u00ff"],
];

function pollutes(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return false;
  if (Array.isArray(v)) return v.some(pollutes);
  if (Object.hasOwn(v, "__proto__")) return true;
  const c = (v as Record<string, unknown>).constructor;
  if (Object.hasOwn(v, "constructor") && typeof c === "object" && c !== null && Object.hasOwn(c, "prototype")) return true;
  return Object.values(v).some(pollutes);
}

export const BODY_LIMIT = 1024 * 1024;

export function fuzzJsonBody(rng: Rng): FuzzBody {
  const contentType = rng.weighted(JSON_TYPES);
  const kind = rng.weighted<string>([
    [6, "shaped"],
    [6, "random"],
    [4, "mutated"],
    [2, "polluted"],
    [2, "deep"],
    [2, "binary"],
    [2, "empty"],
    [2, "none"],
    [1, "huge"],
  ]);
  let text: string | undefined;
  let buf: Buffer | undefined;
  switch (kind) {
    case "shaped":
      text = JSON.stringify(shapedJson(rng));
      break;
    case "random":
      text = JSON.stringify(randomJson(rng, rng.int(0, 5))) ?? "null";
      break;
    case "mutated":
      text = mutateText(rng, JSON.stringify(rng.chance(0.5) ? shapedJson(rng) : randomJson(rng, 3)) ?? "{}");
      break;
    case "polluted":
      text = rng.pick([
        '{"__proto__":{"admin":true}}',
        '{"constructor":{"prototype":{"admin":true}}}',
        '{"a":{"__proto__":{"polluted":1}}}',
        '[{"__proto__":null}]',
        '{"\\u005f\\u005fproto__":{"x":1}}',
        '{"constructor":{"prototype":null}}',
      ]);
      break;
    case "deep":
      text = deepNesting(rng);
      break;
    case "binary":
      buf = rng.bytes(rng.size(2048));
      break;
    case "empty":
      text = rng.pick(["", " ", "\n", "\ufeff"]);
      break;
    case "none":
      break;
    default:
      text = JSON.stringify({ url: "rtmp://127.0.0.1:1/a/b", pad: "x".repeat(rng.int(BODY_LIMIT - 100, BODY_LIMIT + 100_000)) });
  }
  if (text !== undefined) buf = Buffer.from(text, "utf8");
  let parses = false;
  if (
    buf !== undefined &&
    buf.length <= BODY_LIMIT &&
    (contentType === "application/json" || contentType === "application/json; charset=utf-8" || contentType === "Application/JSON")
  ) {
    try {
      const text8 = buf.toString("utf8");
      // Valid UTF-8 only (the parser decodes strictly), without a BOM, JSON, no prototype keys.
      if (Buffer.from(text8, "utf8").equals(buf) && !text8.startsWith("\ufeff") && text8.trim() !== "") parses = !pollutes(JSON.parse(text8));
    } catch {
      parses = false;
    }
  }
  return { body: buf, contentType, parses };
}
