// One relay task: its resolved file list, its targets, its start and end timers, its callbacks
// in order. Created by RelayTasks for cmd 1 (and cmd 3's new list, and on restore).

import { deliverCallback, callbackBody } from "./callbacks.js";
import type { PlanEntry } from "./plan.js";
import type { RelayTaskSpec } from "./request.js";
import { resolveRelaySources, type RelaySources } from "./sources.js";
import { TargetRunner, type TargetHost } from "./target.js";
import type { RelayOptions, RelayTaskInfo, TargetState, TaskRecord } from "./types.js";

const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a task needs from the manager. */
export interface TaskHost {
  readonly opts: RelayOptions;
  /** Where ffconcat lists are written. */
  readonly listDir: string;
  /** Writes every task's state to the state file. */
  save(): void;
}

export class RelayTask implements TargetHost {
  entries: PlanEntry[] = [];
  /** cmd 3 with waitCrtUrlFinish: the list still playing until its current file ends. */
  oldEntries: PlanEntry[] | undefined;
  protocols: string[] = ["file"];
  /** Why the sources cannot be played (set by prepare() when one could not be read). */
  unreadable: string | undefined;
  /** Every file has audio. */
  hasAudio = true;
  watermark: RelaySources["watermark"];
  readonly runners: TargetRunner[] = [];
  readonly dir: string;
  private startTimer: NodeJS.Timeout | undefined;
  private endTimer: NodeJS.Timeout | undefined;
  private callbacks: Promise<void> = Promise.resolve();

  constructor(
    private readonly manager: TaskHost,
    readonly rec: TaskRecord,
  ) {
    this.dir = manager.listDir;
    for (const t of rec.targets) this.runners.push(new TargetRunner(this, t));
  }

  get id(): string {
    return this.rec.spec.id;
  }
  get spec(): RelayTaskSpec {
    return this.rec.spec;
  }
  get opts(): RelayOptions {
    return this.manager.opts;
  }

  /** Resolves and probes the sources (see sources.ts); "invalid_input" for a bad one. */
  async prepare(): Promise<void> {
    const sources = await resolveRelaySources(this.spec, { mediaDir: this.opts.mediaDir, allowedHosts: this.opts.allowedHosts });
    this.entries = sources.entries;
    this.protocols = sources.protocols;
    this.watermark = sources.watermark;
    this.unreadable = sources.unreadable;
    this.hasAudio = sources.hasAudio;
  }

  /** Starts now, or arms the start and end timers. */
  arm(): void {
    const now = Date.now();
    const { startMs, endMs } = this.spec;
    if (endMs !== undefined) this.endTimer = longTimer(endMs - now, () => void this.stopAll("stopped", true));
    if (startMs !== undefined && startMs > now) {
      for (const r of this.runners) if (r.rec.state === "running" || r.rec.state === "scheduled") r.rec.state = "scheduled";
      this.startTimer = longTimer(startMs - now, () => this.startAll());
      this.save();
      return;
    }
    this.startAll();
  }

  private startAll(): void {
    for (const r of this.runners) if (r.rec.state === "scheduled" || r.rec.state === "running") void r.start().then(() => this.save());
    this.save();
  }

  /** Stops every target (cmd 2 for all, end time, replacement by a new cmd 1, shutdown). */
  async stopAll(state: "stopped" | "replaced", notify: boolean): Promise<void> {
    clearTimeout(this.startTimer);
    clearTimeout(this.endTimer);
    await Promise.all(
      this.runners.map(async (r) => {
        if (r.rec.state !== "running" && r.rec.state !== "scheduled") return;
        await r.stop(state);
        if (notify) this.callback(r, "2", "0", "Stop pushing!");
      }),
    );
    this.save();
  }

  async stopTargets(urls: string[]): Promise<void> {
    for (const r of this.runners) {
      if (!urls.includes(r.rec.target.url)) continue;
      if (r.rec.state === "scheduled") r.rec.state = "stopped";
      if (r.rec.state !== "running") continue;
      await r.stop("stopped");
      this.callback(r, "2", "0", "Stop pushing!");
    }
    if (!this.runners.some((r) => r.rec.state === "running" || r.rec.state === "scheduled")) {
      clearTimeout(this.startTimer);
      clearTimeout(this.endTimer);
    }
    this.save();
  }

  /** The callback about one target (docs/bridges.md, "Relay tasks"), delivered in order per task. */
  callback(r: TargetRunner, cmd: string, code: string, msg: string): void {
    const url = this.rec.callbackUrl;
    if (!url) return;
    const body = callbackBody({ msg, code, cmd, id: this.id, src: this.spec.src, forwardUrl: r.rec.target.url });
    this.callbacks = this.callbacks.then(() => deliverCallback(url, body, this.id, this.opts));
  }

  /** Waits for the callbacks queued so far (tests, shutdown). */
  flushCallbacks(): Promise<void> {
    return this.callbacks;
  }

  changed(): void {
    this.save();
  }

  save(): void {
    this.manager.save();
  }

  info(): RelayTaskInfo {
    const targets = this.runners.map((r) => r.info());
    const order: TargetState[] = ["running", "scheduled", "stopped", "failed", "finished"];
    const state = order.find((s) => targets.some((t) => t.state === s)) ?? "finished";
    return {
      id: this.id,
      state,
      createdAt: this.rec.createdAt,
      src: this.spec.src.map((s) => s.url),
      loop: this.spec.loop ?? null,
      ...(this.spec.startMs !== undefined ? { start: new Date(this.spec.startMs).toISOString() } : {}),
      ...(this.spec.endMs !== undefined ? { end: new Date(this.spec.endMs).toISOString() } : {}),
      targets,
    };
  }

  dispose(): void {
    clearTimeout(this.startTimer);
    clearTimeout(this.endTimer);
  }
}

function longTimer(ms: number, fn: () => void): NodeJS.Timeout {
  const t = setTimeout(() => (ms > MAX_TIMER_MS ? void longTimer(ms - MAX_TIMER_MS, fn) : fn()), Math.max(0, Math.min(ms, MAX_TIMER_MS)));
  t.unref();
  return t;
}
