// Which outside tools this machine has for the suites that need them, and the skip-or-fail rule:
// locally a suite without its tool is reported as skipped with the reason in its title; with
// CI=true (or REQUIRE_ALL=1) a missing tool fails the suite instead.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, statSync } from "node:fs";
import path from "node:path";
import { resolveTool } from "../../src/bridges/ffmpeg-path.js";

export type Requirement = "chromium" | "nginx-rtmp" | "ffmpeg" | "ffprobe" | "promtool" | "redis-server";

export interface RequirementStatus {
  name: Requirement;
  ok: boolean;
  /** What was found, or why not. */
  detail: string;
  /** Turned off on purpose for this run (never a failure, even with CI=true). */
  off?: boolean;
}

/**
 * `WHIPSFU_BROWSER_SUITES=off` turns the Chromium suites off for one run: CI runs the whole
 * suite on Node 20 and again, without the slow browser suites, on the current LTS.
 */
export const BROWSER_SUITES_ENV = "WHIPSFU_BROWSER_SUITES";

export const CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
export const NGINX_CANDIDATES = ["/usr/sbin/nginx", "/usr/bin/nginx"];
export const NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
/** Encoders the media suites use. */
export const FFMPEG_ENCODERS = ["libvpx", "libx264", "libopus"];

function executable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && executable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** Path of the Chromium binary: CHROMIUM_PATH, then Debian's locations, then PATH. */
export function chromiumPath(): string | undefined {
  const env = process.env.CHROMIUM_PATH?.trim();
  if (env) return executable(env) ? env : undefined;
  return CHROMIUM_CANDIDATES.find(executable) ?? onPath("chromium");
}

export function nginxPath(): string | undefined {
  const env = process.env.NGINX_PATH?.trim();
  if (env) return executable(env) ? env : undefined;
  return NGINX_CANDIDATES.find(executable) ?? onPath("nginx");
}

function checkChromium(): RequirementStatus {
  if (process.env[BROWSER_SUITES_ENV] === "off") {
    return { name: "chromium", ok: false, off: true, detail: `browser suites are off in this run (${BROWSER_SUITES_ENV}=off)` };
  }
  const bin = chromiumPath();
  if (!bin) {
    const env = process.env.CHROMIUM_PATH?.trim();
    const detail = env ? `CHROMIUM_PATH=${env} is not an executable file` : `no Chromium at ${CHROMIUM_CANDIDATES.join(" or ")} (apt-get install chromium)`;
    return { name: "chromium", ok: false, detail };
  }
  const res = spawnSync(bin, ["--version"], { timeout: 20_000, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (res.status !== 0) {
    const why = res.error?.message ?? (res.stderr || `exit ${res.status}`).trim().split("\n")[0];
    return { name: "chromium", ok: false, detail: `${bin} --version failed: ${why}` };
  }
  return { name: "chromium", ok: true, detail: `${bin}: ${res.stdout.trim()}` };
}

function checkNginxRtmp(): RequirementStatus {
  const bin = nginxPath();
  if (!bin) {
    const env = process.env.NGINX_PATH?.trim();
    const detail = env ? `NGINX_PATH=${env} is not an executable file` : "no nginx binary (apt-get install nginx libnginx-mod-rtmp)";
    return { name: "nginx-rtmp", ok: false, detail };
  }
  if (!existsSync(NGINX_RTMP_MODULE)) {
    return { name: "nginx-rtmp", ok: false, detail: `${bin} found but ${NGINX_RTMP_MODULE} is missing (apt-get install libnginx-mod-rtmp)` };
  }
  return { name: "nginx-rtmp", ok: true, detail: `${bin} with ${NGINX_RTMP_MODULE}` };
}

function checkFfmpeg(): RequirementStatus {
  let bin: string;
  try {
    bin = resolveTool("ffmpeg").path;
  } catch (err) {
    return { name: "ffmpeg", ok: false, detail: (err as Error).message };
  }
  const res = spawnSync(bin, ["-hide_banner", "-encoders"], { timeout: 20_000, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const missing = FFMPEG_ENCODERS.filter((e) => !new RegExp(`^\\s*\\S+\\s+${e}\\s`, "m").test(res.stdout ?? ""));
  if (missing.length > 0) return { name: "ffmpeg", ok: false, detail: `${bin} lacks encoder(s) ${missing.join(", ")}` };
  return { name: "ffmpeg", ok: true, detail: bin };
}

function checkFfprobe(): RequirementStatus {
  try {
    return { name: "ffprobe", ok: true, detail: resolveTool("ffprobe").path };
  } catch (err) {
    return { name: "ffprobe", ok: false, detail: (err as Error).message };
  }
}

/** Prometheus' promtool (Debian's `prometheus` package), for the deploy/prometheus rules. */
function checkPromtool(): RequirementStatus {
  const bin = onPath("promtool");
  if (!bin) return { name: "promtool", ok: false, detail: "no promtool on PATH (apt-get install prometheus)" };
  return { name: "promtool", ok: true, detail: bin };
}

/** Debian's redis-server (the cluster suites start their own on a free port). */
export function redisServerPath(): string | undefined {
  const env = process.env.REDIS_SERVER_PATH?.trim();
  if (env) return executable(env) ? env : undefined;
  return ["/usr/bin/redis-server", "/usr/sbin/redis-server"].find(executable) ?? onPath("redis-server");
}

function checkRedisServer(): RequirementStatus {
  const bin = redisServerPath();
  if (!bin) return { name: "redis-server", ok: false, detail: "no redis-server (apt-get install redis-server)" };
  return { name: "redis-server", ok: true, detail: bin };
}

const CHECKS: Record<Requirement, () => RequirementStatus> = {
  chromium: checkChromium,
  "nginx-rtmp": checkNginxRtmp,
  ffmpeg: checkFfmpeg,
  ffprobe: checkFfprobe,
  promtool: checkPromtool,
  "redis-server": checkRedisServer,
};

const cache = new Map<Requirement, RequirementStatus>();

/** Checks one requirement (cached per process; pass fresh=true after installing something). */
export function checkRequirement(name: Requirement, fresh = false): RequirementStatus {
  if (!fresh) {
    const hit = cache.get(name);
    if (hit) return hit;
  }
  const status = CHECKS[name]();
  cache.set(name, status);
  return status;
}

export const hasChromium = (): boolean => checkRequirement("chromium").ok;
export const hasNginxRtmp = (): boolean => checkRequirement("nginx-rtmp").ok;
export const hasFfmpeg = (): boolean => checkRequirement("ffmpeg").ok;
export const hasFfprobe = (): boolean => checkRequirement("ffprobe").ok;
export const hasPromtool = (): boolean => checkRequirement("promtool").ok;
export const hasRedisServer = (): boolean => checkRequirement("redis-server").ok;

/** CI=true (or REQUIRE_ALL=1): a missing requirement fails instead of skipping. */
export function requirementsAreMandatory(): boolean {
  const ci = (process.env.CI ?? "").toLowerCase();
  return ci === "true" || ci === "1" || process.env.REQUIRE_ALL === "1";
}

/** Set by test/setup/global.ts when it tried to install packages and could not. */
export const INSTALL_NOTE_ENV = "WHIPSFU_TEST_INSTALL_NOTE";

export class MissingRequirementError extends Error {
  constructor(readonly missing: RequirementStatus[]) {
    super(
      `required test tool(s) missing with CI=true: ${missing.map((m) => `${m.name} (${m.detail})`).join("; ")}` +
        (process.env[INSTALL_NOTE_ENV] ? `; install attempt: ${process.env[INSTALL_NOTE_ENV]}` : ""),
    );
    this.name = "MissingRequirementError";
  }
}

export interface RequirementGate {
  /** true when every requirement is there: run the suite. */
  ok: boolean;
  /** "" when ok; otherwise "needs chromium: no Chromium at /usr/bin/chromium …". */
  reason: string;
  statuses: RequirementStatus[];
  /** The describe title, with "[skipped: <reason>]" appended when something is missing. */
  title(name: string): string;
}

/**
 * Use at module level of a suite:
 *
 *   const need = requireOrSkip("chromium");
 *   describe.skipIf(!need.ok)(need.title("browser publish"), () => { … });
 *
 * With CI=true a missing requirement throws here, so the file fails to load and the run fails.
 */
export function requireOrSkip(...names: Requirement[]): RequirementGate {
  const statuses = names.map((n) => checkRequirement(n));
  const missing = statuses.filter((s) => !s.ok);
  const absent = missing.filter((s) => !s.off);
  if (absent.length > 0 && requirementsAreMandatory()) throw new MissingRequirementError(absent);
  const reason = missing.map((m) => `needs ${m.name}: ${m.detail}`).join("; ");
  return {
    ok: missing.length === 0,
    reason,
    statuses,
    title: (name) => (missing.length === 0 ? name : `${name} [skipped: ${reason}]`),
  };
}
