// The one place FFmpeg processes are spawned. Every job is supervised:
// - argument arrays only (never a shell), the binary from resolveFfmpeg();
// - a per-job `-protocol_whitelist` before every input (and checked on outputs): the job names the
//   protocols it needs, and concat/subfile/pipe/data are refused outright, so a URL a user gave can
//   never make FFmpeg read a local file list, a file slice, stdin or inline data;
// - stderr lines go to the log with the job id, rate-limited, and the last error line is kept;
// - `-progress pipe:1` on stdout (a write-only report, not an input: the whitelist does not apply)
//   gives bytes written and media time, which decide "running" and detect stalls;
// - a crash restarts it after 1 s, 2 s, 4 s … capped at 30 s, reset once a run has been fine
//   for a while;
// - stop() sends SIGTERM, then SIGKILL after a grace period, and resolves once the process is gone;
// - closeAll() (the app's onClose) stops every job and leaves no FFmpeg running; a process-exit
//   hook SIGKILLs whatever is still registered if Node ends without closing.
//
// Room egress (HLS, RTMP restream), /start-stream jobs, and later ingest and relay tasks all run
// through here; they differ only in the JobSpec they hand over.

import type { Logger } from "../logger.js";
import { spawn, type ChildProcess } from "node:child_process";
import { fail } from "../errors.js";
import { resolveFfmpeg } from "./ffmpeg-path.js";

export type JobState = "starting" | "running" | "retrying" | "stopped" | "failed";

/** Protocols no job may whitelist: they read local files, file slices, stdin or inline data. */
export const FORBIDDEN_PROTOCOLS: readonly string[] = ["concat", "concatf", "subfile", "pipe", "data", "fd"];

const PROTOCOL_RE = /^[a-z][a-z0-9_+-]{0,31}$/;

/** Validates a whitelist and returns it joined for FFmpeg; throws on a forbidden or odd name. */
export function protocolList(protocols: readonly string[]): string {
  if (protocols.length === 0) throw new Error("a protocol whitelist needs at least one protocol");
  for (const p of protocols) {
    if (!PROTOCOL_RE.test(p)) throw new Error(`invalid protocol name "${p}" in whitelist`);
    if (FORBIDDEN_PROTOCOLS.includes(p)) throw new Error(`protocol "${p}" may never be whitelisted`);
  }
  return protocols.join(",");
}

/** `-protocol_whitelist <list>` for an output (inputs get theirs from JobSpec.protocols). */
export function whitelistArgs(protocols: readonly string[]): string[] {
  return ["-protocol_whitelist", protocolList(protocols)];
}

/**
 * The job's arguments with `-protocol_whitelist` placed before every `-i`; every whitelist in the
 * result (also ones the job put before an output) is checked against FORBIDDEN_PROTOCOLS.
 */
export function withWhitelist(args: readonly string[], protocols: readonly string[]): string[] {
  const list = protocolList(protocols);
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-protocol_whitelist") {
      const value = args[i + 1];
      if (value === undefined) throw new Error("-protocol_whitelist without a value");
      protocolList(value.split(","));
      // An input's own whitelist is replaced by the job's (one per input, never two).
      if (args[i + 2] === "-i") {
        i++;
        continue;
      }
      out.push(a, value);
      i++;
      continue;
    }
    if (a === "-i") out.push("-protocol_whitelist", list);
    out.push(a);
  }
  return out;
}

/** Arguments every job starts with: quiet banner, no stdin, tagged warnings, progress on stdout. */
export const GLOBAL_ARGS: readonly string[] = [
  "-hide_banner",
  "-nostdin",
  "-loglevel",
  "level+warning",
  "-nostats",
  "-progress",
  "pipe:1",
];

export interface JobExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why the run ended, in one line (the last error FFmpeg printed, or how it exited). */
  reason: string;
  /** How long it ran. */
  ms: number;
}

export interface JobSpec {
  /** Unique among live jobs; in every log line of the job. */
  id: string;
  /** "hls", "restream", "stream", later "ingest", "relay". */
  kind: string;
  /** Protocols each input may use (e.g. ["file", "udp", "rtp"] for an SDP input). */
  protocols: readonly string[];
  /** FFmpeg arguments after the global ones, built afresh for every start (after prepare). */
  args(): string[];
  /** "always" (default): restart whatever the exit; "on-failure": not after exit code 0; "never". */
  restart?: "always" | "on-failure" | "never";
  /** Consecutive failed starts after which the job is "failed" (default: never give up). */
  maxRestarts?: number;
  /** A running job whose output has not advanced for this long is killed and restarted. */
  stallTimeoutMs?: number;
  /** Before each start (ports, files); a throw counts as a failed start. */
  prepare?(): void | Promise<void>;
  /** After each spawn. */
  onSpawn?(pid: number): void;
  /** After each exit of a spawned process. */
  onExit?(exit: JobExit): void;
  /** Once, when the job has ended for good (stopped or failed). */
  cleanup?(): void | Promise<void>;
  /** Applied to every stderr line and reason before it is logged or kept (hides stream keys). */
  redact?(text: string): string;
  /** Extra fields in the job's log lines (e.g. { room }). */
  meta?: Record<string, string>;
}

export interface JobInfo {
  id: string;
  kind: string;
  state: JobState;
  pid?: number;
  /** Restarts so far (not counting the first start). */
  restarts: number;
  /** When the current (or last) run started. */
  since?: string;
  /** Bytes FFmpeg wrote to its output over all runs, when it can tell (RTMP yes, HLS no). */
  bytesOut?: number;
  /** Media seconds written by the current run. */
  outSeconds?: number;
  lastError?: string;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run that lasted this long resets the back-off to initialMs. */
  resetAfterMs: number;
}

export interface SupervisorOptions {
  log: Logger;
  /** Default resolveFfmpeg(). */
  ffmpegPath?: () => string;
  backoff?: Partial<BackoffOptions>;
  /** SIGTERM → SIGKILL delay (default 5000 ms). */
  stopGraceMs?: number;
  /** At most this many stderr lines per job per window are logged (default 20 per 10 s). */
  stderrLinesPerWindow?: number;
  stderrWindowMs?: number;
  /** At most this many live jobs at once; start() beyond it throws a "capacity" error (default unlimited). */
  maxJobs?: number;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, resetAfterMs: 30_000 };
const KEEP_STDERR_LINES = 30;
/** Delay of the second SIGTERM of a stop (see Job.signalStop). */
const SECOND_SIGNAL_MS = 200;
const MAX_LINE = 500;

// Every FFmpeg child of every supervisor in this process, SIGKILLed if Node exits without closing.
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of liveChildren) {
        try {
          c.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
    });
  }
}

/** `[rtmp @ 0x55…] [error] text` → `text`. */
export function cleanStderrLine(line: string): string {
  return line
    .replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, "")
    .replace(/^\[(?:fatal|error|warning|panic|info|verbose|debug)\]\s*/i, "")
    .trim()
    .slice(0, MAX_LINE);
}

function isErrorLine(line: string): boolean {
  return /\[(?:error|fatal|panic)\]/.test(line);
}

type Waiter = { resolve: () => void; reject: (err: Error) => void; timer?: NodeJS.Timeout };

export class Job {
  private stateValue: JobState = "starting";
  private child: ChildProcess | undefined;
  private runStartedAt = 0;
  private sinceIso: string | undefined;
  private attempt = 0;
  private restartsValue = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private termTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private ended = false;
  private endedResolve!: () => void;
  /** Resolves when the job has ended for good (stopped or failed) and cleanup ran. */
  readonly done: Promise<void>;
  private lastErrorValue: string | undefined;
  private readonly stderrTail: string[] = [];
  private stderrBuf = "";
  private stdoutBuf = "";
  private logged = 0;
  private suppressed = 0;
  private windowStart = 0;
  private bytesBefore = 0;
  private bytesRun = 0;
  private outUs = 0;
  private lastAdvanceAt = 0;
  private progressBlock: Record<string, string> = {};
  private waiters: Waiter[] = [];
  /** The current prepare(), awaited before cleanup so the two never overlap. */
  private preparing: Promise<unknown> = Promise.resolve();
  /** The current run was killed for stalling. */
  private stalled = false;
  private readonly stateListeners: ((state: JobState) => void)[] = [];

  constructor(
    readonly spec: JobSpec,
    private readonly sup: SupervisorInternals,
  ) {
    this.done = new Promise((resolve) => (this.endedResolve = resolve));
  }

  get id(): string {
    return this.spec.id;
  }

  get kind(): string {
    return this.spec.kind;
  }

  get state(): JobState {
    return this.stateValue;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get lastError(): string | undefined {
    return this.lastErrorValue;
  }

  get restarts(): number {
    return this.restartsValue;
  }

  get bytesOut(): number {
    return this.bytesBefore + this.bytesRun;
  }

  info(): JobInfo {
    const bytes = this.bytesOut;
    return {
      id: this.id,
      kind: this.kind,
      state: this.stateValue,
      ...(this.child?.pid !== undefined ? { pid: this.child.pid } : {}),
      restarts: this.restartsValue,
      ...(this.sinceIso ? { since: this.sinceIso } : {}),
      ...(bytes > 0 ? { bytesOut: bytes } : {}),
      ...(this.outUs > 0 ? { outSeconds: Math.round(this.outUs / 1000) / 1000 } : {}),
      ...(this.lastErrorValue ? { lastError: this.lastErrorValue } : {}),
    };
  }

  onState(listener: (state: JobState) => void): void {
    this.stateListeners.push(listener);
  }

  /**
   * Resolves once the current run is producing output ("running") or has stayed up for probeMs;
   * rejects with the reason when the run ends (or cannot start) before that. For callers that must
   * answer whether FFmpeg started (e.g. POST /start-stream).
   */
  waitStarted(probeMs: number): Promise<void> {
    if (this.stateValue === "running") return Promise.resolve();
    if (this.ended) return Promise.reject(new Error(this.lastErrorValue ?? `job ${this.stateValue}`));
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      w.timer = setTimeout(() => {
        this.settleWaiter(w);
        if (this.child && this.stateValue !== "retrying" && !this.ended) resolve();
        else reject(new Error(this.lastErrorValue ?? `FFmpeg did not start within ${probeMs} ms`));
      }, probeMs);
      this.waiters.push(w);
    });
  }

  private settleWaiter(w: Waiter): void {
    clearTimeout(w.timer);
    this.waiters = this.waiters.filter((x) => x !== w);
  }

  private resolveWaiters(): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  private rejectWaiters(reason: string): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(reason));
    }
  }

  private setState(state: JobState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.sup.log.info({ job: this.id, kind: this.kind, ...this.spec.meta, state, pid: this.child?.pid }, "ffmpeg job state");
    for (const l of this.stateListeners) {
      try {
        l(state);
      } catch {
        // a listener's failure is not the job's
      }
    }
  }

  private redact(text: string): string {
    return this.spec.redact ? this.spec.redact(text) : text;
  }

  /** Starts the first run (the supervisor calls this once). */
  launch(): void {
    void this.run();
  }

  private async run(): Promise<void> {
    if (this.stopping || this.ended) return;
    this.setState("starting");
    let args: string[];
    let bin: string;
    try {
      const prepared = Promise.resolve(this.spec.prepare?.());
      this.preparing = prepared.catch(() => undefined);
      await prepared;
      if (this.stopping || this.ended) return;
      args = [...GLOBAL_ARGS, ...withWhitelist(this.spec.args(), this.spec.protocols)];
      bin = this.sup.ffmpegPath();
    } catch (err) {
      this.runFailed(null, null, this.redact(`cannot start FFmpeg: ${(err as Error).message}`), 0);
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], windowsHide: true });
    } catch (err) {
      this.runFailed(null, null, `cannot spawn ${bin}: ${(err as Error).message}`, 0);
      return;
    }
    this.child = child;
    this.runStartedAt = performance.now();
    this.sinceIso = new Date().toISOString();
    this.bytesRun = 0;
    this.outUs = 0;
    this.lastAdvanceAt = performance.now();
    this.progressBlock = {};
    this.stderrTail.length = 0;
    this.stderrBuf = "";
    this.stdoutBuf = "";
    let exited = false;
    let spawnError: string | undefined;
    const onEnd = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      liveChildren.delete(child);
      this.sup.children.delete(child);
      clearTimeout(this.killTimer);
      clearTimeout(this.termTimer);
      clearInterval(this.stallTimer);
      this.flushStderr();
      const ms = Math.round(performance.now() - this.runStartedAt);
      this.bytesBefore += this.bytesRun;
      this.bytesRun = 0;
      this.child = undefined;
      const reason = spawnError ?? this.exitReason(code, signal);
      try {
        this.spec.onExit?.({ code, signal, reason, ms });
      } catch {
        // the job's hook must not break supervision
      }
      if (this.stopping) {
        this.finish("stopped");
        return;
      }
      this.runFailed(code, signal, reason, ms);
    };
    child.once("error", (err) => {
      spawnError = `cannot spawn ${bin}: ${(err as NodeJS.ErrnoException).code ?? err.message}`;
      // A failed spawn emits no exit event.
      if (child.pid === undefined) onEnd(null, null);
    });
    child.once("exit", (code, signal) => onEnd(code, signal));
    if (child.pid === undefined) return; // the error event follows
    track(child);
    this.sup.children.add(child);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => this.onStderr(chunk));
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => this.onStdout(chunk));
    if (this.spec.stallTimeoutMs) {
      const limit = this.spec.stallTimeoutMs;
      this.stallTimer = setInterval(() => {
        if (this.stateValue === "running" && performance.now() - this.lastAdvanceAt > limit) {
          this.lastErrorValue = `stalled: no output for ${Math.round(limit / 1000)} s`;
          this.sup.log.warn({ job: this.id, kind: this.kind, ...this.spec.meta, pid: child.pid }, "ffmpeg stalled, killing");
          this.stalled = true;
          child.kill("SIGKILL");
        }
      }, Math.min(1000, limit));
    }
    this.stalled = false;
    try {
      this.spec.onSpawn?.(child.pid);
    } catch {
      // ignore
    }
    // A stop requested while spawning: end the process right away.
    if (this.stopping) this.signalStop(child);
  }

  private exitReason(code: number | null, signal: NodeJS.Signals | null): string {
    if (this.stalled) return this.lastErrorValue ?? "stalled";
    if (signal) return `killed by ${signal}`;
    const errLine = [...this.stderrTail].reverse().find(isErrorLine);
    const line = errLine ?? this.stderrTail[this.stderrTail.length - 1];
    const text = line ? cleanStderrLine(line) : "";
    if (code === 0) return text ? `exited: ${text}` : "exited (input ended)";
    return text || `exited with code ${code}`;
  }

  /** A run ended (or never began) without a stop: restart with back-off, or give up. */
  private runFailed(code: number | null, signal: NodeJS.Signals | null, reason: string, ms: number): void {
    this.lastErrorValue = this.redact(reason);
    this.rejectWaiters(this.lastErrorValue);
    this.sup.log.warn({ job: this.id, kind: this.kind, ...this.spec.meta, code, signal, ms, reason: this.lastErrorValue }, "ffmpeg exited");
    const policy = this.spec.restart ?? "always";
    if (this.sup.closed || policy === "never" || (policy === "on-failure" && code === 0)) {
      this.finish(code === 0 && !signal ? "stopped" : "failed");
      return;
    }
    if (ms >= this.sup.backoff.resetAfterMs) this.attempt = 0;
    if (this.spec.maxRestarts !== undefined && this.attempt >= this.spec.maxRestarts) {
      this.finish("failed");
      return;
    }
    const delay = Math.min(this.sup.backoff.maxMs, this.sup.backoff.initialMs * 2 ** this.attempt);
    this.attempt++;
    this.setState("retrying");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.restartsValue++;
      this.sup.noteRestart();
      void this.run();
    }, delay);
  }

  private finish(state: "stopped" | "failed"): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.stallTimer);
    this.setState(state);
    this.rejectWaiters(this.lastErrorValue ?? `job ${state}`);
    this.sup.forget(this);
    void this.preparing
      .then(() => this.spec.cleanup?.())
      .catch((err: unknown) => this.sup.log.warn({ job: this.id, err: (err as Error).message }, "ffmpeg job cleanup failed"))
      .finally(() => this.endedResolve());
  }

  /**
   * SIGTERM; again after SECOND_SIGNAL_MS; SIGKILL after the grace period. FFmpeg's first signal
   * only ends its loop at the next packet, and a room that has ended sends none: its interrupt
   * callback (which aborts a blocked read and still lets it finish its output) needs a second one.
   */
  private signalStop(child: ChildProcess): void {
    const send = (signal: NodeJS.Signals): void => {
      try {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      } catch {
        // gone already
      }
    };
    send("SIGTERM");
    clearTimeout(this.killTimer);
    clearTimeout(this.termTimer);
    this.termTimer = setTimeout(() => send("SIGTERM"), Math.min(SECOND_SIGNAL_MS, this.sup.stopGraceMs / 2));
    this.killTimer = setTimeout(() => send("SIGKILL"), this.sup.stopGraceMs);
  }

  /** SIGTERM, SIGKILL after the grace period; resolves when the process is gone and cleanup ran. Idempotent. */
  stop(): Promise<void> {
    if (this.ended) return this.done;
    if (!this.stopping) {
      this.stopping = this.done;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      const child = this.child;
      if (child) this.signalStop(child);
      // No process (retrying, or preparing: run() sees `stopping` and returns): done now.
      else this.finish("stopped");
    }
    return this.done;
  }

  /** Kills the current process as a crash would (tests, and a "restart now" for callers). */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child?.kill(signal);
  }

  private onStdout(chunk: string): void {
    this.stdoutBuf += chunk;
    let nl: number;
    while ((nl = this.stdoutBuf.indexOf("\n")) >= 0) {
      const line = this.stdoutBuf.slice(0, nl).trim();
      this.stdoutBuf = this.stdoutBuf.slice(nl + 1);
      const eq = line.indexOf("=");
      if (eq <= 0) continue;
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1);
      if (key !== "progress") {
        this.progressBlock[key] = value;
        continue;
      }
      this.onProgress(this.progressBlock);
      this.progressBlock = {};
    }
    if (this.stdoutBuf.length > 64 * 1024) this.stdoutBuf = "";
  }

  private onProgress(block: Record<string, string>): void {
    const size = Number(block.total_size);
    const outUs = Number(block.out_time_us);
    const frame = Number(block.frame);
    let advanced = false;
    if (Number.isFinite(size) && size > this.bytesRun) {
      this.bytesRun = size;
      advanced = true;
    }
    if (Number.isFinite(outUs) && outUs > this.outUs) {
      this.outUs = outUs;
      advanced = true;
    }
    if (advanced) this.lastAdvanceAt = performance.now();
    if ((advanced || frame > 0) && this.stateValue === "starting" && !this.stopping) {
      this.setState("running");
      this.resolveWaiters();
    }
  }

  private onStderr(chunk: string): void {
    this.stderrBuf += chunk;
    let nl: number;
    while ((nl = this.stderrBuf.search(/[\r\n]/)) >= 0) {
      const line = this.stderrBuf.slice(0, nl);
      this.stderrBuf = this.stderrBuf.slice(nl + 1);
      this.stderrLine(line);
    }
    if (this.stderrBuf.length > 4096) {
      this.stderrLine(this.stderrBuf);
      this.stderrBuf = "";
    }
  }

  private flushStderr(): void {
    if (this.stderrBuf.trim() !== "") this.stderrLine(this.stderrBuf);
    this.stderrBuf = "";
  }

  private stderrLine(raw: string): void {
    const line = this.redact(raw.trim()).slice(0, MAX_LINE);
    if (line === "") return;
    this.stderrTail.push(line);
    if (this.stderrTail.length > KEEP_STDERR_LINES) this.stderrTail.shift();
    const now = performance.now();
    if (now - this.windowStart >= this.sup.stderrWindowMs) {
      if (this.suppressed > 0) {
        this.sup.log.warn({ job: this.id, kind: this.kind, ...this.spec.meta, suppressed: this.suppressed }, "ffmpeg stderr lines suppressed");
      }
      this.windowStart = now;
      this.logged = 0;
      this.suppressed = 0;
    }
    if (this.logged < this.sup.stderrLinesPerWindow) {
      this.logged++;
      const fields = { job: this.id, kind: this.kind, ...this.spec.meta, pid: this.child?.pid, stderr: line };
      // What FFmpeg says while being stopped ("Immediate exit requested") is no warning.
      if (isErrorLine(line) && !this.stopping) this.sup.log.warn(fields, "ffmpeg");
      else this.sup.log.info(fields, "ffmpeg");
    } else {
      this.suppressed++;
    }
  }
}

/** What a Job needs from its supervisor. */
interface SupervisorInternals {
  readonly log: Logger;
  readonly closed: boolean;
  readonly backoff: BackoffOptions;
  readonly stopGraceMs: number;
  readonly stderrLinesPerWindow: number;
  readonly stderrWindowMs: number;
  readonly children: Set<ChildProcess>;
  ffmpegPath(): string;
  forget(job: Job): void;
  noteRestart(): void;
}

export class Supervisor implements SupervisorInternals {
  readonly log: Logger;
  readonly backoff: BackoffOptions;
  readonly stopGraceMs: number;
  readonly stderrLinesPerWindow: number;
  readonly stderrWindowMs: number;
  readonly children = new Set<ChildProcess>();
  private readonly jobs = new Map<string, Job>();
  private closedValue = false;
  private readonly pathOf: () => string;
  readonly maxJobs: number;
  /** Restarts of every job since start (jobs that ended included), for /metrics. */
  restartsTotal = 0;
  /** start() calls refused by maxJobs, for /metrics. */
  rejectedTotal = 0;

  constructor(opts: SupervisorOptions) {
    this.log = opts.log;
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.stopGraceMs = opts.stopGraceMs ?? 5000;
    this.stderrLinesPerWindow = opts.stderrLinesPerWindow ?? 20;
    this.stderrWindowMs = opts.stderrWindowMs ?? 10_000;
    this.pathOf = opts.ffmpegPath ?? resolveFfmpeg;
    this.maxJobs = opts.maxJobs ?? Infinity;
  }

  noteRestart(): void {
    this.restartsTotal++;
  }

  get closed(): boolean {
    return this.closedValue;
  }

  ffmpegPath(): string {
    return this.pathOf();
  }

  /**
   * Starts a job (its first run begins at once). Throws "conflict" when the id is taken,
   * "shutting_down" after closeAll(), "capacity" at the job limit (nothing is started; the HTTP
   * layer adds Retry-After, RFC 9725 §4.6).
   */
  start(spec: JobSpec): Job {
    if (this.closedValue) throw fail("shutting_down", "the FFmpeg supervisor is closed");
    if (this.jobs.has(spec.id)) throw fail("conflict", `an FFmpeg job "${spec.id}" is already running`);
    protocolList(spec.protocols);
    if (this.jobs.size >= this.maxJobs) {
      this.log.warn({ job: spec.id, kind: spec.kind, ...spec.meta, limit: this.maxJobs }, "ffmpeg job refused: job limit reached");
      throw this.refuse();
    }
    const job = new Job(spec, this);
    this.jobs.set(spec.id, job);
    job.launch();
    return job;
  }

  /** Throws the job limit's "capacity" error when `jobs` more would not fit (a batch is refused whole). */
  ensureRoomFor(jobs: number): void {
    if (this.jobs.size + jobs > this.maxJobs) throw this.refuse();
  }

  private refuse(): Error {
    this.rejectedTotal++;
    return fail("capacity", `FFmpeg job limit reached (${this.maxJobs} running)`);
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** Live jobs (not yet stopped or failed). */
  list(kind?: string): Job[] {
    return [...this.jobs.values()].filter((j) => kind === undefined || j.kind === kind);
  }

  /** Pids of every FFmpeg process running now. */
  pids(): number[] {
    return [...this.children].map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  forget(job: Job): void {
    if (this.jobs.get(job.id) === job) this.jobs.delete(job.id);
  }

  async stop(id: string): Promise<boolean> {
    const job = this.jobs.get(id);
    if (!job) return false;
    await job.stop();
    return true;
  }

  /** Stops every job; resolves when no FFmpeg of this supervisor is left. No new job starts after it. */
  async closeAll(): Promise<void> {
    this.closedValue = true;
    await Promise.all([...this.jobs.values()].map((j) => j.stop()));
    // Anything that slipped through (a child whose job already forgot it): SIGKILL and wait.
    await Promise.all(
      [...this.children].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGKILL");
          }),
      ),
    );
  }
}
