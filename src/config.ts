import { hostname } from "node:os";
import path from "node:path";
import { checkUrl, isHostPattern } from "./bridges/policy.js";

// Every environment variable the server reads, parsed and validated once.
// A bad value throws ConfigError naming the variable, so start-up stops with a clear message.

export interface IceServerConfig {
  urls: string[];
  username?: string;
  credential?: string;
}

export interface Config {
  port: number;
  host: string;
  authToken?: string;
  roomTokens: Map<string, string>;
  jwtSecret?: string;
  adminToken?: string;
  rateLimitRps: number;
  rateLimitBurst: number;
  maxSubsPerRoom: number;
  allowedOrigin: string;
  /** Servers given to clients (bootstrap, Link headers) and, when set, used by the server's own ICE. */
  iceServers: IceServerConfig[];
  recordEnabled: boolean;
  recordDir: string;
  trustProxy: boolean;
  /** Local addresses gathered in addition to the interfaces' own (loopback is excluded otherwise). */
  iceAdditionalHosts: string[];
  /** When non-empty, only candidates on these local addresses are advertised and paired. */
  iceHosts: string[];
  /** Public addresses of a 1:1 NAT in front of the server: each host candidate is also advertised with them. */
  icePublicIps: string[];
  /** Inclusive UDP port range for the server's ICE sockets; undefined = ephemeral ports. */
  icePortRange?: [number, number];
  iceTcp: boolean;
  /** Whether the server's own ICE agent uses iceServers (STUN/TURN). Off by default: host candidates only. */
  iceGatherServers: boolean;
  /** Seconds without any packet from a peer after which its session is ended. */
  peerTimeoutSeconds: number;
  logLevel: string;
  webDir: string;
  /** 0 = unlimited. Rooms with a publisher, and WHIP+WHEP sessions, server-wide. */
  maxRooms: number;
  maxSessions: number;
  /**
   * "native" (default): the native addon protects and sends each packet for all of a track's
   * viewers at once, falling back to "fast" where it is not built; "fast": the project's own send
   * path in JavaScript; "werift": werift's RTCRtpSender.sendRtp (reference).
   */
  forwardPath: "native" | "fast" | "werift";
  /** Fan-out worker processes for the fast path (0: viewers' packets are sent from the server process). */
  forwardWorkers: number;
  /** Keep the current GOP of WHIP video for joiners (for publishers that ignore PLI). */
  gopCache: boolean;
  /** When set, /metrics needs `Authorization: Bearer <token>`. */
  metricsToken?: string;
  /** SRS-style callback URLs per event (space-separated in HOOK_ON_*), called in order. */
  hooks: Partial<Record<"on_connect" | "on_close" | "on_publish" | "on_unpublish" | "on_play" | "on_stop" | "on_record" | "on_failover", string[]>>;
  hookTimeoutMs: number;
  /** Stable id of this server in callbacks. */
  serverId: string;
  /** HLS for every live room (else per room through POST /api/rooms/{room}/hls). */
  hlsEnabled: boolean;
  /** Where HLS playlists and segments are written: {hlsDir}/{room or streamId}/stream.m3u8. */
  hlsDir: string;
  /** X-API-Key of POST /start-stream, /stop-stream, GET /streams; unset = those routes answer 403. */
  transcoderApiKey?: string;
  /** A /start-stream FFmpeg that is still up after this long (or already writing) counts as started. */
  startStreamProbeMs: number;
  /** FFmpeg processes (HLS, restreams, ingest, /start-stream, relays) at once; beyond it → 503. 0 = unlimited. */
  maxFfmpegJobs: number;
  /** Relay tasks: the MD5 key of n/r/k; unset = the relay API answers 403. */
  relayKey?: string;
  /** Account names (`n`) the relay API accepts; empty = any. */
  relayAccounts: string[];
  /** Relay task state, kept across restarts. */
  relayStateFile: string;
  /** `end` at least this long after `start` and after now (default 300 s). */
  relayMinWindowSeconds: number;
  /** A stopped relay can be resumed this long (default 48 h). */
  relayResumeHours: number;
  /** Each relay callback try waits this long for an answer (default 10 s, 3 tries). */
  relayCallbackTimeoutMs: number;
  /** Calls per account per relayRateWindowSeconds (default 100 per 5 minutes). */
  relayRateLimit: number;
  relayRateWindowSeconds: number;
  /** Ingest file sources must resolve under this directory. */
  mediaDir: string;
  /** When non-empty, network sources (ingest by API or callback, relay files and watermark images) must be on one of these hosts ("*.example.com" allowed). */
  ingestAllowedHosts: string[];
  /** When set, POST /api/srs/callback needs ?secret=<it>. */
  srsCallbackSecret?: string;
  /**
   * Continuity (docs/media.md, "Publisher reconnects and hot standby"): seconds a room and its
   * viewers wait for a new publisher after theirs ends (0: the room ends with its publisher), and
   * how long a primary may go silent before its backup takes over.
   */
  roomGraceSeconds: number;
  failoverMs: number;
  /** Several nodes on one Redis (REDIS_URL); undefined = the single node (docs/api.md, "Cluster"). */
  cluster?: ClusterConfig;
  /** SIGTERM drains for this long before closing (viewers moved, publishers kept); 0 = close at once. */
  drainSeconds: number;
}

export interface ClusterConfig {
  redisUrl: string;
  /** The HTTP base URL other nodes and clients reach this node at (no trailing slash). */
  advertiseUrl: string;
  /** Carried by node-to-node requests; nothing else accepts it. */
  secret: string;
  /** Names the node in session URLs and in Redis: letters, digits, _ and -. */
  nodeId: string;
  /** Edges pulling a room straight from its owner; further edges pull from those edges. */
  maxDirectEdges: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === "" ? undefined : t;
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const v = str(env, name);
  if (v === undefined) return def;
  if (!/^\d+$/.test(v)) throw new ConfigError(name, `expected a whole number, got "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function num(env: Env, name: string, def: number, min: number, max: number): number {
  const v = str(env, name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConfigError(name, `expected a number, got "${v}"`);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const v = str(env, name);
  if (v === undefined) return def;
  const l = v.toLowerCase();
  if (["1", "true", "yes", "on"].includes(l)) return true;
  if (["0", "false", "no", "off"].includes(l)) return false;
  throw new ConfigError(name, `expected true or false, got "${v}"`);
}

export const ROOM_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

function parseRoomTokens(env: Env): Map<string, string> {
  const out = new Map<string, string>();
  const v = str(env, "ROOM_TOKENS");
  if (v === undefined) return out;
  for (const part of v.split(",")) {
    const entry = part.trim();
    if (entry === "") continue;
    const i = entry.indexOf(":");
    if (i <= 0 || i === entry.length - 1) {
      throw new ConfigError("ROOM_TOKENS", `expected room:token pairs separated by commas, got "${entry.slice(0, 80)}"`);
    }
    const room = entry.slice(0, i).trim();
    const token = entry.slice(i + 1).trim();
    if (!ROOM_NAME_RE.test(room)) throw new ConfigError("ROOM_TOKENS", `invalid room name "${room.slice(0, 80)}"`);
    if (token === "") throw new ConfigError("ROOM_TOKENS", `empty token for room "${room}"`);
    out.set(room, token);
  }
  return out;
}

const ICE_URL_RE = /^(stun|stuns|turn|turns):[^\s]+$/;

function checkIceUrl(url: string): string {
  if (!ICE_URL_RE.test(url)) throw new ConfigError("ICE_SERVERS", `not a stun:/turn: URL: "${url.slice(0, 120)}"`);
  return url;
}

function parseIceServers(env: Env): IceServerConfig[] {
  const v = str(env, "ICE_SERVERS");
  if (v === undefined) return [];
  if (v.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      throw new ConfigError("ICE_SERVERS", "is not valid JSON");
    }
    if (!Array.isArray(parsed)) throw new ConfigError("ICE_SERVERS", "JSON must be an array");
    return parsed.map((entry: unknown, i): IceServerConfig => {
      if (typeof entry !== "object" || entry === null) throw new ConfigError("ICE_SERVERS", `entry ${i} is not an object`);
      const e = entry as Record<string, unknown>;
      const urlsRaw = e.urls;
      const urls = typeof urlsRaw === "string" ? [urlsRaw] : Array.isArray(urlsRaw) ? urlsRaw : undefined;
      if (!urls || urls.length === 0 || !urls.every((u): u is string => typeof u === "string")) {
        throw new ConfigError("ICE_SERVERS", `entry ${i} needs "urls" (a string or an array of strings)`);
      }
      urls.forEach(checkIceUrl);
      const server: IceServerConfig = { urls };
      if (e.username !== undefined) {
        if (typeof e.username !== "string") throw new ConfigError("ICE_SERVERS", `entry ${i}: username must be a string`);
        server.username = e.username;
      }
      if (e.credential !== undefined) {
        if (typeof e.credential !== "string") throw new ConfigError("ICE_SERVERS", `entry ${i}: credential must be a string`);
        server.credential = e.credential;
      }
      return server;
    });
  }
  return v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((u) => ({ urls: [checkIceUrl(u)] }));
}

function parseHosts(env: Env, name: string): string[] {
  const v = str(env, name);
  if (v === undefined) return [];
  const hosts = v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const h of hosts) {
    const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
    const ok = ipv4 ? ipv4.slice(1).every((o) => Number(o) <= 255) : /^[0-9a-fA-F:]+$/.test(h) && h.includes(":");
    if (!ok) throw new ConfigError(name, `"${h.slice(0, 80)}" is not an IP address`);
  }
  return hosts;
}

function parsePortRange(env: Env): [number, number] | undefined {
  const v = str(env, "ICE_PORT_RANGE");
  if (v === undefined) return undefined;
  const m = /^(\d+)\s*-\s*(\d+)$/.exec(v);
  if (!m) throw new ConfigError("ICE_PORT_RANGE", `expected MIN-MAX, e.g. 40000-40199, got "${v}"`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (lo < 1024 || hi > 65535 || lo >= hi) {
    throw new ConfigError("ICE_PORT_RANGE", `needs 1024 <= MIN < MAX <= 65535, got ${lo}-${hi}`);
  }
  return [lo, hi];
}

const HOOK_VARS = {
  on_connect: "HOOK_ON_CONNECT",
  on_close: "HOOK_ON_CLOSE",
  on_publish: "HOOK_ON_PUBLISH",
  on_unpublish: "HOOK_ON_UNPUBLISH",
  on_play: "HOOK_ON_PLAY",
  on_stop: "HOOK_ON_STOP",
  on_record: "HOOK_ON_RECORD",
  on_failover: "HOOK_ON_FAILOVER",
} as const;

function parseHooks(env: Env): Config["hooks"] {
  const out: Config["hooks"] = {};
  for (const [event, name] of Object.entries(HOOK_VARS) as [keyof typeof HOOK_VARS, string][]) {
    const v = str(env, name);
    if (v === undefined) continue;
    const urls = v.split(/\s+/).filter((u) => u !== "");
    for (const u of urls) {
      if (!checkUrl(u, "callback").ok) throw new ConfigError(name, `not an http(s) URL: "${u.slice(0, 120)}"`);
    }
    out[event] = urls;
  }
  return out;
}

function forwardPath(env: Env): "native" | "fast" | "werift" {
  const v = str(env, "FORWARD_PATH") ?? "native";
  if (v !== "native" && v !== "fast" && v !== "werift") throw new ConfigError("FORWARD_PATH", `expected native, fast or werift, got "${v}"`);
  return v;
}

function hlsDir(env: Env): string {
  const v = str(env, "HLS_DIR") ?? "./hls";
  if (v.includes("\0")) throw new ConfigError("HLS_DIR", "contains a NUL character");
  const abs = path.resolve(v);
  if (abs === path.parse(abs).root) throw new ConfigError("HLS_DIR", `must not be the filesystem root, got "${v}"`);
  return v;
}

/** A high-entropy shared secret: at least 16 characters, no whitespace. */
function transcoderApiKey(env: Env): string | undefined {
  const v = str(env, "TRANSCODER_API_KEY");
  if (v === undefined) return undefined;
  if (/\s/.test(v)) throw new ConfigError("TRANSCODER_API_KEY", "must not contain whitespace");
  if (v.length < 16) throw new ConfigError("TRANSCODER_API_KEY", `must be at least 16 characters, got ${v.length}`);
  return v;
}

function relayKey(env: Env): string | undefined {
  const v = str(env, "RELAY_KEY");
  if (v === undefined) return undefined;
  if (/\s/.test(v)) throw new ConfigError("RELAY_KEY", "must not contain whitespace");
  if (v.length < 8) throw new ConfigError("RELAY_KEY", `must be at least 8 characters, got ${v.length}`);
  return v;
}

function mediaDir(env: Env): string {
  const v = str(env, "MEDIA_DIR") ?? "./media";
  if (v.includes("\0")) throw new ConfigError("MEDIA_DIR", "contains a NUL character");
  const abs = path.resolve(v);
  if (abs === path.parse(abs).root) throw new ConfigError("MEDIA_DIR", `must not be the filesystem root, got "${v}"`);
  return v;
}

/** Host names or IP addresses, comma-separated; "*.example.com" covers its subdomains. */
function ingestAllowedHosts(env: Env): string[] {
  const v = str(env, "INGEST_ALLOWED_HOSTS");
  if (v === undefined) return [];
  const hosts = v
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  for (const h of hosts) {
    if (!isHostPattern(h)) throw new ConfigError("INGEST_ALLOWED_HOSTS", `"${h.slice(0, 80)}" is not a host name or IP address`);
  }
  return hosts;
}

function srsCallbackSecret(env: Env): string | undefined {
  const v = str(env, "SRS_CALLBACK_SECRET");
  if (v === undefined) return undefined;
  if (!/^[A-Za-z0-9._~-]+$/.test(v)) throw new ConfigError("SRS_CALLBACK_SECRET", "may only contain letters, digits and . _ ~ - (it travels in a URL)");
  if (v.length < 16) throw new ConfigError("SRS_CALLBACK_SECRET", `must be at least 16 characters, got ${v.length}`);
  return v;
}

// ---- cluster ---------------------------------------------------------------------------------

const NODE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

function httpUrl(env: Env, name: string): string | undefined {
  const v = str(env, name);
  if (v === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ConfigError(name, `not a URL: "${v.slice(0, 120)}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(name, `expected an http(s) URL, got "${v.slice(0, 120)}"`);
  if (url.search !== "" || url.hash !== "" || (url.pathname !== "/" && url.pathname !== "")) {
    throw new ConfigError(name, `expected a base URL without path, query or fragment, got "${v.slice(0, 120)}"`);
  }
  return `${url.protocol}//${url.host}`;
}

/** REDIS_URL turns the cluster on; the other CLUSTER_* variables are then checked. */
function cluster(env: Env, port: number): ClusterConfig | undefined {
  const redisUrl = str(env, "REDIS_URL");
  if (redisUrl === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(redisUrl);
  } catch {
    throw new ConfigError("REDIS_URL", "not a URL (expected redis://host:port)");
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:")
    throw new ConfigError("REDIS_URL", `expected redis:// or rediss://, got "${parsed.protocol}"`);
  const advertiseUrl = httpUrl(env, "CLUSTER_ADVERTISE_URL");
  if (advertiseUrl === undefined) throw new ConfigError("CLUSTER_ADVERTISE_URL", "is required with REDIS_URL (the URL other nodes reach this node at)");
  const secret = str(env, "CLUSTER_SECRET");
  if (secret === undefined) throw new ConfigError("CLUSTER_SECRET", "is required with REDIS_URL");
  if (/\s/.test(secret)) throw new ConfigError("CLUSTER_SECRET", "must not contain whitespace");
  if (secret.length < 16) throw new ConfigError("CLUSTER_SECRET", `must be at least 16 characters, got ${secret.length}`);
  const nodeId = str(env, "CLUSTER_NODE_ID") ?? `${hostname()}-${port}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(-64);
  if (!NODE_ID_RE.test(nodeId)) throw new ConfigError("CLUSTER_NODE_ID", `may only contain letters, digits, _ and - (1-64), got "${nodeId.slice(0, 80)}"`);
  return { redisUrl, advertiseUrl, secret, nodeId, maxDirectEdges: int(env, "CLUSTER_MAX_DIRECT_EDGES", 8, 1, 1000) };
}

export function loadConfig(env: Env = process.env): Config {
  const allowedOrigin = str(env, "ALLOWED_ORIGIN") ?? "*";
  if (allowedOrigin !== "*" && !/^https?:\/\/[^\s/]+$/.test(allowedOrigin)) {
    throw new ConfigError("ALLOWED_ORIGIN", `expected "*" or an origin like https://example.com, got "${allowedOrigin}"`);
  }
  const rateLimitRps = num(env, "RATE_LIMIT_RPS", 20, 0.01, 1_000_000);
  const port = int(env, "PORT", 8080, 0, 65535);
  return {
    port,
    host: str(env, "HOST") ?? "0.0.0.0",
    authToken: str(env, "AUTH_TOKEN"),
    roomTokens: parseRoomTokens(env),
    jwtSecret: str(env, "JWT_SECRET"),
    adminToken: str(env, "ADMIN_TOKEN"),
    rateLimitRps,
    rateLimitBurst: int(env, "RATE_LIMIT_BURST", Math.max(40, Math.ceil(rateLimitRps * 2)), 1, 1_000_000),
    maxSubsPerRoom: int(env, "MAX_SUBS_PER_ROOM", 0, 0, 1_000_000),
    allowedOrigin,
    iceServers: parseIceServers(env),
    recordEnabled: bool(env, "RECORD_ENABLED", false),
    recordDir: str(env, "RECORD_DIR") ?? "./records",
    trustProxy: bool(env, "TRUST_PROXY", false),
    iceAdditionalHosts: parseHosts(env, "ICE_ADDITIONAL_HOSTS"),
    iceHosts: parseHosts(env, "ICE_HOSTS"),
    icePublicIps: parseHosts(env, "ICE_PUBLIC_IPS"),
    icePortRange: parsePortRange(env),
    iceTcp: bool(env, "ICE_TCP", false),
    iceGatherServers: bool(env, "ICE_GATHER_SERVERS", false),
    peerTimeoutSeconds: num(env, "PEER_TIMEOUT_SECONDS", 6, 1, 60),
    logLevel: str(env, "LOG_LEVEL") ?? "info",
    webDir: str(env, "WEB_DIR") ?? "web",
    hooks: parseHooks(env),
    gopCache: bool(env, "GOP_CACHE", false),
    forwardPath: forwardPath(env),
    forwardWorkers: int(env, "FORWARD_WORKERS", 0, 0, 64),
    maxRooms: int(env, "MAX_ROOMS", 0, 0, 1_000_000),
    maxSessions: int(env, "MAX_SESSIONS", 0, 0, 1_000_000),
    metricsToken: str(env, "METRICS_TOKEN"),
    hookTimeoutMs: int(env, "HOOK_TIMEOUT_MS", 3000, 100, 60_000),
    serverId: str(env, "SERVER_ID") ?? `whipsfu-${hostname()}`,
    hlsEnabled: bool(env, "HLS_ENABLED", false),
    hlsDir: hlsDir(env),
    transcoderApiKey: transcoderApiKey(env),
    startStreamProbeMs: int(env, "START_STREAM_PROBE_MS", 3000, 200, 60_000),
    maxFfmpegJobs: int(env, "MAX_FFMPEG_JOBS", 16, 0, 10_000),
    relayKey: relayKey(env),
    relayAccounts: (str(env, "RELAY_ACCOUNTS") ?? "")
      .split(",")
      .map((a) => a.trim())
      .filter((a) => a !== ""),
    relayStateFile: str(env, "RELAY_STATE_FILE") ?? "./data/relay-tasks.json",
    relayMinWindowSeconds: int(env, "RELAY_MIN_WINDOW_SECONDS", 300, 0, 86_400),
    relayResumeHours: num(env, "RELAY_RESUME_HOURS", 48, 0, 8760),
    relayCallbackTimeoutMs: int(env, "RELAY_CALLBACK_TIMEOUT_MS", 10_000, 100, 120_000),
    relayRateLimit: int(env, "RELAY_RATE_LIMIT", 100, 1, 1_000_000),
    relayRateWindowSeconds: int(env, "RELAY_RATE_WINDOW_SECONDS", 300, 1, 86_400),
    mediaDir: mediaDir(env),
    ingestAllowedHosts: ingestAllowedHosts(env),
    srsCallbackSecret: srsCallbackSecret(env),
    cluster: cluster(env, port),
    drainSeconds: int(env, "DRAIN_SECONDS", 0, 0, 3600),
    roomGraceSeconds: num(env, "ROOM_GRACE_SECONDS", 10, 0, 3600),
    failoverMs: int(env, "FAILOVER_MS", 1000, 100, 60_000),
  };
}
