// One supervised FFmpeg job: its runs and their state machine (starting → running → retrying …
// → stopped | failed). Each run is spawned with an argument array (never a shell), the binary
// from the owner, GLOBAL_ARGS and the job's -protocol_whitelist before every input (protocols.ts).
// - `-progress pipe:1` on stdout (a write-only report, not an input: the whitelist does not apply)
//   says "running" and detects stalls; stderr is logged and kept (job-output.ts);
// - a crash restarts it after 1 s, 2 s, 4 s … capped at 30 s, reset once a run has been fine
//   for a while;
// - stop() sends SIGTERM, then SIGKILL after a grace period, and resolves once the process is gone;
// - every child is registered with children.ts, which SIGKILLs it if Node ends without closing.

import type { Logger } from "../logger.js";
import { spawn, type ChildProcess } from "node:child_process";
import { forgetChild, trackChild } from "./children.js";
import { Progress, StderrLines } from "./job-output.js";
import type { JobInfo, JobSpec, JobState } from "./job-spec.js";
import { withWhitelist } from "./protocols.js";
import { StartWaiters } from "./start-waiters.js";

/** Arguments every job starts with: quiet banner, no stdin, tagged warnings, progress on stdout. */
export const GLOBAL_ARGS: readonly string[] = ["-hide_banner", "-nostdin", "-loglevel", "level+warning", "-nostats", "-progress", "pipe:1"];

/** Delay of the second SIGTERM of a stop (see Job.signalStop). */
const SECOND_SIGNAL_MS = 200;

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run that lasted this long resets the back-off to initialMs. */
  resetAfterMs: number;
}

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
  private readonly stderr: StderrLines;
  /** Of the current (or last) run. */
  private readonly progress: Progress;
  /** Bytes written by the runs before the current one. */
  private bytesBefore = 0;
  private readonly starts = new StartWaiters();
  /** The current prepare(), awaited before cleanup so the two never overlap. */
  private preparing: Promise<unknown> = Promise.resolve();
  /** The current run was killed for stalling. */
  private stalled = false;
  private readonly stateListeners: ((state: JobState) => void)[] = [];

  constructor(
    readonly spec: JobSpec,
    private readonly sup: JobOwner,
  ) {
    this.done = new Promise((resolve) => (this.endedResolve = resolve));
    this.stderr = new StderrLines({
      log: sup.log,
      linesPerWindow: sup.stderrLinesPerWindow,
      windowMs: sup.stderrWindowMs,
      redact: (text) => this.redact(text),
      fields: () => ({ job: this.id, kind: this.kind, ...this.spec.meta }),
      pid: () => this.child?.pid,
      stopping: () => this.stopping !== undefined,
    });
    this.progress = new Progress((active) => {
      if (active && this.stateValue === "starting" && !this.stopping) {
        this.setState("running");
        this.starts.resolveAll();
      }
    });
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
    return this.bytesBefore + this.progress.bytes;
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
      ...(this.progress.outUs > 0 ? { outSeconds: Math.round(this.progress.outUs / 1000) / 1000 } : {}),
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
    return this.starts.add(probeMs, () =>
      this.child && this.stateValue !== "retrying" && !this.ended ? undefined : (this.lastErrorValue ?? `FFmpeg did not start within ${probeMs} ms`),
    );
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
    this.progress.reset();
    this.stderr.reset();
    let exited = false;
    let spawnError: string | undefined;
    const onEnd = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      forgetChild(child);
      this.sup.children.delete(child);
      clearTimeout(this.killTimer);
      clearTimeout(this.termTimer);
      clearInterval(this.stallTimer);
      this.stderr.flush();
      const ms = Math.round(performance.now() - this.runStartedAt);
      this.bytesBefore += this.progress.bytes;
      this.progress.bytes = 0;
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
    trackChild(child);
    this.sup.children.add(child);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => this.stderr.push(chunk));
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => this.progress.push(chunk));
    if (this.spec.stallTimeoutMs) {
      const limit = this.spec.stallTimeoutMs;
      this.stallTimer = setInterval(
        () => {
          if (this.stateValue === "running" && performance.now() - this.progress.lastAdvanceAt > limit) {
            this.lastErrorValue = `stalled: no output for ${Math.round(limit / 1000)} s`;
            this.sup.log.warn({ job: this.id, kind: this.kind, ...this.spec.meta, pid: child.pid }, "ffmpeg stalled, killing");
            this.stalled = true;
            child.kill("SIGKILL");
          }
        },
        Math.min(1000, limit),
      );
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
    const text = this.stderr.lastWords();
    if (code === 0) return text ? `exited: ${text}` : "exited (input ended)";
    return text || `exited with code ${code}`;
  }

  /** A run ended (or never began) without a stop: restart with back-off, or give up. */
  private runFailed(code: number | null, signal: NodeJS.Signals | null, reason: string, ms: number): void {
    this.lastErrorValue = this.redact(reason);
    this.starts.rejectAll(this.lastErrorValue);
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
    this.starts.rejectAll(this.lastErrorValue ?? `job ${state}`);
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
}

/** What a Job needs from its supervisor. */
export interface JobOwner {
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
