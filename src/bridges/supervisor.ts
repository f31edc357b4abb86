// The one place FFmpeg processes are started (see job.ts for how each is run and watched): a
// registry of live jobs by id, the job limit (MAX_FFMPEG_JOBS), restart counts for /metrics, and
// closeAll() (the app's onClose), which stops every job and leaves no FFmpeg running.

import type { Logger } from "../logger.js";
import type { ChildProcess } from "node:child_process";
import { fail } from "../errors.js";
import { resolveFfmpeg } from "./ffmpeg-path.js";
import { Job, type BackoffOptions, type JobOwner } from "./job.js";
import type { JobSpec } from "./job-spec.js";
import { protocolList } from "./protocols.js";

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

export class Supervisor implements JobOwner {
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
