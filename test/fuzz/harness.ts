// The fuzz runner: cases in batches with a little concurrency, each reproducible on its own
// (FUZZ_SEED + FUZZ_ONLY=target:index), every response checked against the statuses docs/api.md
// allows for its route and for the canary planted next to every served directory, /healthz after
// every batch.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startServer, type TestServer } from "../helpers/server.js";
import { FUZZ_SEED, Rng } from "./prng.js";
import { HttpTarget, type RawRequest, type RawResponse } from "./raw-http.js";

// ---- how many cases ---------------------------------------------------------------------------

/** Total cases of the suite: FUZZ_CASES, 10 000 by default (CI). */
export const FUZZ_CASES: number = (() => {
  const v = process.env.FUZZ_CASES;
  if (v === undefined || v.trim() === "") return 10_000;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`FUZZ_CASES: expected a positive whole number, got ${v}`);
  return n;
})();

/** Share of the total per target; together 1. */
export const SHARES = {
  whip: 0.2,
  whep: 0.15,
  json: 0.15,
  rooms: 0.15,
  paths: 0.2,
  tokens: 0.15,
} as const;
export type Target = keyof typeof SHARES;

export function casesFor(target: Target): number {
  return Math.max(1, Math.round(FUZZ_CASES * SHARES[target]));
}

/** Generous per-test timeout: about 15 ms a case, at least a minute. */
export function timeoutFor(target: Target): number {
  return Math.max(60_000, casesFor(target) * 15 + 30_000);
}

/** FUZZ_ONLY=target:index runs that one case (the index a failure report names). */
const ONLY: { target: string; index: number } | undefined = (() => {
  const v = process.env.FUZZ_ONLY;
  if (!v) return undefined;
  const m = /^([a-z]+):(\d+)$/.exec(v.trim());
  if (!m) throw new Error(`FUZZ_ONLY: expected target:index, got ${v}`);
  return { target: m[1]!, index: Number(m[2]) };
})();

// ---- planted files ------------------------------------------------------------------------------

export interface FuzzFiles {
  root: string;
  recordDir: string;
  hlsDir: string;
  webDir: string;
  /** Written into every file planted outside the served directories. */
  canary: string;
  /** A recording inside RECORD_DIR that may be served. */
  record: { name: string; content: string };
  /** An HLS playlist inside HLS_DIR that may be served. */
  hls: { room: string; content: string };
  remove(): void;
}

/**
 * RECORD_DIR, HLS_DIR and WEB_DIR side by side in a temp dir, each with a legitimate file, and
 * canary files next to them: named like recordings, playlists, pages, so a path that escapes
 * and still passes a name check would find one.
 */
export function plantFiles(): FuzzFiles {
  const root = mkdtempSync(path.join(tmpdir(), "sfu-fuzz-"));
  const canary = `FUZZ-CANARY-${randomBytes(12).toString("hex")}`;
  const recordDir = path.join(root, "records");
  const hlsDir = path.join(root, "hls");
  const webDir = path.join(root, "web");
  for (const d of [recordDir, hlsDir, path.join(hlsDir, "live"), webDir, path.join(root, "secret")]) mkdirSync(d, { recursive: true });
  const record = { name: "demo_video0_1710123456.ivf", content: "DKIF-real-recording" };
  writeFileSync(path.join(recordDir, record.name), record.content);
  const hls = { room: "live", content: "#EXTM3U\n#EXT-X-VERSION:3\n" };
  writeFileSync(path.join(hlsDir, "live", "stream.m3u8"), hls.content);
  writeFileSync(path.join(webDir, "index.html"), "<!doctype html><title>fuzz</title>");
  for (const name of [
    "canary.txt",
    "demo_video0_1710123456.ivf",
    "demo_audio0_1710123456.ogg",
    "demo_1710123456.webm",
    "stream.m3u8",
    "seg_1.ts",
    "index.html",
    ".env",
    "secret/canary.txt",
    "secret/stream.m3u8",
    "secret/demo_video0_1710123456.ivf",
  ]) {
    writeFileSync(path.join(root, name), canary);
  }
  return {
    root,
    recordDir,
    hlsDir,
    webDir,
    canary,
    record,
    hls,
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

// ---- checks -------------------------------------------------------------------------------------

/** A server for fuzzing: what fuzzServer started, and the way to end it and its files again. */
export interface FuzzServer {
  server: TestServer;
  files: FuzzFiles;
  http: HttpTarget;
  /** Closes the connection pool and the server, removes the planted files. */
  close(): Promise<void>;
}

/**
 * The server every fuzz file runs against: the planted directories as RECORD_DIR, HLS_DIR and
 * WEB_DIR, rate limits out of reach, logs at FUZZ_LOG_LEVEL (error by default); `env` adds to it.
 */
export async function fuzzServer(files: FuzzFiles, env: Record<string, string> = {}): Promise<FuzzServer> {
  const server = await startServer({
    RECORD_DIR: files.recordDir,
    HLS_DIR: files.hlsDir,
    WEB_DIR: files.webDir,
    RATE_LIMIT_RPS: "1000000",
    RATE_LIMIT_BURST: "1000000",
    LOG_LEVEL: process.env.FUZZ_LOG_LEVEL ?? "error",
    ...env,
  });
  const http = new HttpTarget(server.url);
  return {
    server,
    files,
    http,
    close: async () => {
      http.close();
      await server.close();
      files.remove();
    },
  };
}

export class CaseFailure extends Error {}

export function fail(message: string): never {
  throw new CaseFailure(message);
}

export function describeResponse(res: RawResponse): string {
  const body = res.body.subarray(0, 300).toString("utf8");
  return `${res.status}${res.raw ? " (raw socket)" : ""} ${JSON.stringify(body)}`;
}

export function expectStatus(res: RawResponse, allowed: readonly number[], what: string): void {
  if (!allowed.includes(res.status)) fail(`${what}: status ${describeResponse(res)} not in [${allowed.join(", ")}]`);
}

/** The error shape of docs/api.md ("Errors"): JSON `{"error": "<message>"}`; returns the message. */
export function jsonError(res: RawResponse, what: string): string {
  const type = String(res.headers["content-type"] ?? "");
  if (!type.startsWith("application/json")) fail(`${what}: error ${res.status} is not JSON (content-type ${JSON.stringify(type)}): ${describeResponse(res)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body.toString("utf8"));
  } catch {
    fail(`${what}: error body does not parse as JSON: ${describeResponse(res)}`);
  }
  const error = (parsed as { error?: unknown } | null)?.error;
  if (typeof error !== "string") fail(`${what}: error body has no "error" string: ${describeResponse(res)}`);
  return error;
}

/** The exact error of docs/api.md. */
export function expectError(res: RawResponse, status: number, message: string | RegExp, what: string): void {
  if (res.status !== status) fail(`${what}: expected ${status} ${String(message)}, got ${describeResponse(res)}`);
  const got = jsonError(res, what);
  if (typeof message === "string" ? got !== message : !message.test(got)) fail(`${what}: expected error ${String(message)}, got ${JSON.stringify(got)}`);
}

// ---- the runner ---------------------------------------------------------------------------------

export interface CaseContext {
  http: HttpTarget;
  /**
   * Every response of the case goes through here: the canary and /etc/passwd must never appear,
   * and no 5xx but 503 unless `allow5xx` (a route that documents one).
   */
  send(req: RawRequest & { allow5xx?: boolean }): Promise<RawResponse>;
}

export interface FuzzTarget {
  name: Target;
  http: HttpTarget;
  canary: string;
  /** Parallel cases within a batch. */
  concurrency?: number;
  batchSize?: number;
  /** Before every batch (e.g. make sure a room still has its publisher). */
  beforeBatch?: () => Promise<void>;
  run(rng: Rng, index: number, ctx: CaseContext): Promise<void>;
}

export interface FuzzReport {
  target: Target;
  cases: number;
  statuses: Record<string, number>;
  failures: string[];
  ms: number;
}

/** A run stops collecting after this many failures (FUZZ_MAX_FAILURES to see more). */
const MAX_FAILURES = Number(process.env.FUZZ_MAX_FAILURES ?? 25);

export async function runFuzz(target: FuzzTarget): Promise<FuzzReport> {
  const total = casesFor(target.name);
  const indexes = ONLY ? (ONLY.target === target.name ? [ONLY.index] : []) : Array.from({ length: total }, (_, i) => i);
  const statuses = new Map<number | string, number>();
  const failures: string[] = [];
  const slow: [number, number][] = [];
  const canary = Buffer.from(target.canary);
  const passwd = Buffer.from("root:x:0:0");
  const t0 = performance.now();
  const batchSize = target.batchSize ?? 200;
  const concurrency = target.concurrency ?? 8;

  const ctxFor = (index: number): CaseContext => ({
    http: target.http,
    send: async (req) => {
      let res: RawResponse;
      if (ONLY && process.env.FUZZ_DUMP) {
        writeFileSync(process.env.FUZZ_DUMP, req.body === undefined ? "" : req.body);
        console.log(`[fuzz] ${req.method} ${JSON.stringify(req.path)}: body written to ${process.env.FUZZ_DUMP}`);
      }
      try {
        res = await target.http.send(req);
      } catch (err) {
        fail(
          `${req.method} ${JSON.stringify(req.path.slice(0, 300))} ${JSON.stringify((req.headers ?? []).map(([k, v]) => [k, v.slice(0, 100)]))}: no response: ${(err as Error).message}`,
        );
      }
      // Reproducing one case: show what went out and what came back.
      if (ONLY) {
        const body = req.body === undefined ? "" : Buffer.isBuffer(req.body) ? req.body.toString("latin1") : req.body;
        console.log(
          `[fuzz] ${req.method} ${JSON.stringify(req.path)} ${JSON.stringify(req.headers ?? [])}\n${JSON.stringify(body.slice(0, 20_000))}\n-> ${describeResponse(res)}`,
        );
      }
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.body.includes(canary))
        fail(`${req.method} ${JSON.stringify(req.path.slice(0, 300))} served a file from outside the served directories (canary): ${describeResponse(res)}`);
      if (res.body.includes(passwd)) fail(`${req.method} ${JSON.stringify(req.path.slice(0, 300))} served /etc/passwd`);
      if (res.status >= 500 && res.status !== 503 && !req.allow5xx)
        fail(`${req.method} ${JSON.stringify(req.path.slice(0, 300))} answered ${describeResponse(res)}`);
      void index;
      return res;
    },
  });

  const runOne = async (index: number): Promise<void> => {
    const rng = Rng.forCase(FUZZ_SEED, target.name, index);
    const started = performance.now();
    try {
      await target.run(rng, index, ctxFor(index));
      const ms = performance.now() - started;
      if (ms > 1000) slow.push([index, Math.round(ms)]);
    } catch (err) {
      const msg = err instanceof CaseFailure ? err.message : `threw ${(err as Error)?.stack ?? String(err)}`;
      failures.push(`[FUZZ_SEED=${FUZZ_SEED} FUZZ_ONLY=${target.name}:${index}] ${msg.slice(0, 2000)}`);
    }
  };

  for (let b = 0; b < indexes.length && failures.length < MAX_FAILURES; b += batchSize) {
    await target.beforeBatch?.();
    const batch = indexes.slice(b, b + batchSize);
    let next = 0;
    const worker = async () => {
      while (next < batch.length && failures.length < MAX_FAILURES) await runOne(batch[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, worker));
    const health = await target.http.send({ method: "GET", path: "/healthz", timeoutMs: 10_000 }).catch((err: Error) => err);
    if (health instanceof Error || health.status !== 200 || health.body.toString() !== "ok") {
      failures.push(`after cases ${batch[0]}..${batch[batch.length - 1]}: /healthz ${health instanceof Error ? health.message : describeResponse(health)}`);
      break;
    }
  }
  const report: FuzzReport = {
    target: target.name,
    cases: indexes.length,
    statuses: Object.fromEntries([...statuses.entries()].sort((a, b) => Number(a[0]) - Number(b[0]))),
    failures,
    ms: Math.round(performance.now() - t0),
  };
  slow.sort((a, b) => b[1] - a[1]);
  console.log(
    `[fuzz] ${target.name}: ${report.cases} cases in ${report.ms} ms, seed ${FUZZ_SEED}, statuses ${JSON.stringify(report.statuses)}, ` +
      `${failures.length} failure(s)${
        slow.length
          ? `, ${slow.length} over 1 s (slowest ${slow
              .slice(0, 5)
              .map(([i, ms]) => `${target.name}:${i} ${ms} ms`)
              .join(", ")})`
          : ""
      }`,
  );
  return report;
}

/** Open file descriptors of this process (Linux), for leak checks around a target. */
export function openFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}
