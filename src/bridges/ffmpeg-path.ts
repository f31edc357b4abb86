// Where the FFmpeg and ffprobe binaries are: FFMPEG_PATH / FFPROBE_PATH first, then the PATH,
// then the static binaries shipped by the npm packages @ffmpeg-installer/ffmpeg and
// @ffprobe-installer/ffprobe. Each candidate is checked by running `-version` once; the first
// that answers is cached for the life of the process.

import { spawnSync } from "node:child_process";
import { accessSync, chmodSync, constants, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export type FfmpegTool = "ffmpeg" | "ffprobe";

export type ToolSource = "env" | "path" | "npm";

export interface ResolvedTool {
  tool: FfmpegTool;
  /** Absolute path (or the env value as given) of a binary that answered `-version`. */
  path: string;
  source: ToolSource;
  /** First line of its `-version` output, e.g. "ffmpeg version 5.1.6-0+deb12u1 ...". */
  version: string;
}

/** Everything the lookup touches, injectable for tests. */
export interface ResolveOptions {
  env?: Record<string, string | undefined>;
  /** Returns the `.path` of the npm package, or throws when the package or its binary is missing. */
  npmPath?: (tool: FfmpegTool) => string;
  /** Milliseconds `-version` may take (a cold 70 MB static binary can be slow to load). */
  timeoutMs?: number;
}

const ENV_NAME: Record<FfmpegTool, string> = { ffmpeg: "FFMPEG_PATH", ffprobe: "FFPROBE_PATH" };
const NPM_PACKAGE: Record<FfmpegTool, string> = {
  ffmpeg: "@ffmpeg-installer/ffmpeg",
  ffprobe: "@ffprobe-installer/ffprobe",
};

const require = createRequire(import.meta.url);

function defaultNpmPath(tool: FfmpegTool): string {
  let mod: unknown;
  try {
    mod = require(NPM_PACKAGE[tool]);
  } catch (err) {
    // @ffmpeg-installer/ffmpeg throws a bare string, not an Error, when its binary is missing.
    throw new Error(typeof err === "string" ? err : err instanceof Error ? err.message : String(err));
  }
  const p = (mod as { path?: unknown }).path;
  if (typeof p !== "string" || p === "") throw new Error(`${NPM_PACKAGE[tool]} exports no path`);
  return p;
}

function message(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

/** Runs `<bin> -version`; returns its first line, or throws with why it did not answer. */
function probeVersion(bin: string, timeoutMs: number): string {
  const res = spawnSync(bin, ["-version"], {
    timeout: timeoutMs,
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    windowsHide: true,
  });
  if (res.error) {
    const code = (res.error as NodeJS.ErrnoException).code;
    if (code === "ETIMEDOUT") throw new Error(`"${bin} -version" did not finish within ${timeoutMs} ms`);
    throw new Error(`"${bin} -version" could not run (${code ?? res.error.message})`);
  }
  if (res.status !== 0) {
    const why = res.signal ? `was killed by ${res.signal}` : `exited with ${res.status}`;
    const err = (res.stderr ?? "").trim().split("\n")[0] ?? "";
    throw new Error(`"${bin} -version" ${why}${err ? `: ${err.slice(0, 200)}` : ""}`);
  }
  const first = (res.stdout ?? "").split("\n")[0]?.trim() ?? "";
  if (!/version/i.test(first)) throw new Error(`"${bin} -version" printed no version line`);
  return first;
}

/** First executable file named `name` in the PATH directories, or undefined. */
function findOnPath(name: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.resolve(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here, or not executable: keep looking
    }
  }
  return undefined;
}

/**
 * npm 11 can skip the packages' postinstall `chmod`, leaving the static binary without its exec bit.
 * Restore it; throw a sentence saying so when that is not allowed.
 */
function ensureExecutable(file: string): void {
  try {
    accessSync(file, constants.X_OK);
    return;
  } catch {
    // fall through to chmod
  }
  try {
    chmodSync(file, 0o755);
    accessSync(file, constants.X_OK);
  } catch (err) {
    throw new Error(`${file} is not executable and chmod 0755 failed (${message(err)})`);
  }
}

/** Looks the tool up without the cache. Throws an Error listing why each candidate failed. */
export function resolveTool(tool: FfmpegTool, options: ResolveOptions = {}): ResolvedTool {
  const env = options.env ?? process.env;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const npmPath = options.npmPath ?? defaultNpmPath;
  const tried: string[] = [];

  const envName = ENV_NAME[tool];
  const fromEnv = env[envName]?.trim();
  if (fromEnv) {
    try {
      return { tool, path: fromEnv, source: "env", version: probeVersion(fromEnv, timeoutMs) };
    } catch (err) {
      tried.push(`${envName}=${fromEnv}: ${message(err)}`);
    }
  } else {
    tried.push(`${envName} is not set`);
  }

  const onPath = findOnPath(tool, env.PATH);
  if (onPath) {
    try {
      return { tool, path: onPath, source: "path", version: probeVersion(onPath, timeoutMs) };
    } catch (err) {
      tried.push(`${onPath} (on PATH): ${message(err)}`);
    }
  } else {
    tried.push(`no ${tool} on PATH`);
  }

  try {
    const file = npmPath(tool);
    ensureExecutable(file);
    return { tool, path: file, source: "npm", version: probeVersion(file, timeoutMs) };
  } catch (err) {
    tried.push(`${NPM_PACKAGE[tool]}: ${message(err)}`);
  }

  throw new Error(
    `No working ${tool} binary found (${tried.join("; ")}). ` +
      `Install FFmpeg (e.g. apt-get install ffmpeg), run npm install for ${NPM_PACKAGE[tool]}, or set ${envName}.`,
  );
}

const cache = new Map<FfmpegTool, ResolvedTool>();

/** Cached lookup; only a success is cached, so a later install is picked up by the next call. */
export function resolveToolCached(tool: FfmpegTool): ResolvedTool {
  const hit = cache.get(tool);
  if (hit) return hit;
  const found = resolveTool(tool);
  cache.set(tool, found);
  return found;
}

/** Path of a working ffmpeg binary (FFMPEG_PATH, PATH, then @ffmpeg-installer/ffmpeg). */
export function resolveFfmpeg(): string {
  return resolveToolCached("ffmpeg").path;
}

/** Path of a working ffprobe binary (FFPROBE_PATH, PATH, then @ffprobe-installer/ffprobe). */
export function resolveFfprobe(): string {
  return resolveToolCached("ffprobe").path;
}

/** Forgets cached lookups (tests, or after installing FFmpeg at run time). */
export function clearFfmpegPathCache(): void {
  cache.clear();
}
