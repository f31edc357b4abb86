// Relay tasks (docs/bridges.md, "Relay tasks"): VOD files played out as a live stream to RTMP
// targets or into a local room, looped, windowed, scheduled, stopped and resumed, with callbacks.
// This is the manager: the API's commands (1 start, 2 stop, 3 new file list, 5 resume) executed
// one at a time, the job limit checked for a whole command, and the tasks kept in the state file
// (store.ts) so a restarted server picks them up again. A task (task.ts) runs one TargetRunner
// (target.ts) per forward target, each one FFmpeg at a time under the one supervisor.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fail } from "../../errors.js";
import type { PlayPosition } from "./plan.js";
import type { RelayCommand, RelayTarget, RelayTaskSpec } from "./request.js";
import { loadTaskRecords, saveTaskRecords } from "./store.js";
import { displayUrl, type TargetRunner } from "./target.js";
import { RelayTask, type TaskHost } from "./task.js";
import type { RelayOptions, RelayTaskInfo, TaskRecord } from "./types.js";

const SAVE_MS = 5000;

export class RelayTasks implements TaskHost {
  private readonly tasks = new Map<string, RelayTask>();
  readonly listDir: string;
  private closed = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private serial: Promise<unknown> = Promise.resolve();

  constructor(readonly opts: RelayOptions) {
    this.listDir = mkdtempSync(path.join(tmpdir(), "sfu-relay-"));
    this.saveTimer = setInterval(() => {
      if ([...this.tasks.values()].some((t) => t.runners.some((r) => r.rec.state === "running"))) this.save();
    }, SAVE_MS);
    this.saveTimer.unref();
  }

  /**
   * Picks up the tasks of the state file: running ones resume where they were, scheduled ones are
   * re-armed. Runs beside start-up (probing a remote source can take seconds); close() ends it.
   */
  async restore(): Promise<void> {
    const records = loadTaskRecords(this.opts.stateFile);
    if (records.length === 0) return;
    for (const rec of records) if (!(await this.revive(rec))) return;
    this.save();
  }

  /**
   * Runs a task another node ran until it died (a cluster's takeover), from its record, as
   * restore() does for the state file's; a task of that id here is replaced.
   */
  adopt(rec: TaskRecord): Promise<void> {
    const run = this.serial.then(async () => {
      if (this.closed) throw fail("shutting_down", "server is shutting down");
      await this.drop(rec.spec.id);
      await this.revive(rec);
      this.save();
    });
    this.serial = run.catch(() => undefined);
    return run;
  }

  /** Ends a task here without callbacks (another node runs it now). */
  async drop(id: string): Promise<void> {
    const task = this.tasks.get(id);
    if (!task) return;
    this.tasks.delete(id);
    task.dispose();
    await Promise.all(task.runners.map((r) => (r.rec.state === "running" ? r.stop("replaced") : undefined)));
  }

  /** Takes a stored record up again: running targets resume where they were, scheduled ones are re-armed. False once closed. */
  private async revive(rec: TaskRecord): Promise<boolean> {
    const now = Date.now();
    for (const t of rec.targets) if (t.state === "stopped" && (t.resumeUntil ?? 0) < now) t.state = "finished";
    const task = new RelayTask(this, rec);
    try {
      await task.prepare();
      if (this.closed) return false;
    } catch (err) {
      for (const t of rec.targets)
        if (t.state === "running" || t.state === "scheduled") Object.assign(t, { state: "failed", lastError: (err as Error).message });
      this.tasks.set(task.id, task);
      return true;
    }
    this.tasks.set(task.id, task);
    if (rec.spec.endMs !== undefined && rec.spec.endMs <= now) {
      for (const t of rec.targets) if (t.state === "running" || t.state === "scheduled") t.state = "finished";
      return true;
    }
    if (rec.targets.some((t) => t.state === "running" || t.state === "scheduled")) {
      this.opts.log.info({ relay: task.id }, "relay task restored");
      task.arm();
    }
    return true;
  }

  /** One command, executed in arrival order; a domain error for what the request got wrong. */
  execute(command: RelayCommand): Promise<void> {
    const run = this.serial.then(() => this.run(command));
    this.serial = run.catch(() => undefined);
    return run;
  }

  private async run(command: RelayCommand): Promise<void> {
    if (this.closed) throw fail("shutting_down", "server is shutting down");
    switch (command.cmd) {
      case "1":
        return this.startTasks(command, command.tasks);
      case "2":
        return this.stopTasks(command.tasks);
      case "3":
        return this.replaceLists(command);
      case "5":
        return this.resumeTasks(command);
    }
  }

  private async startTasks(command: RelayCommand, specs: RelayTaskSpec[], positions?: Map<string, Map<string, PlayPosition>>): Promise<void> {
    const prepared: RelayTask[] = [];
    for (const spec of specs) {
      const rec: TaskRecord = {
        spec,
        callbackUrl: command.callbackUrl,
        createdAt: new Date().toISOString(),
        targets: spec.forward.map((f) => ({
          target: f.resetTo ?? f.target,
          state: "scheduled",
          position: positions?.get(spec.id)?.get(f.target.url) ?? { pass: 0, entry: spec.index, offset: 0 },
        })),
      };
      const task = new RelayTask(this, rec);
      await task.prepare();
      prepared.push(task);
    }
    const now = Date.now();
    this.opts.supervisor.ensureRoomFor(prepared.filter((t) => t.spec.startMs === undefined || t.spec.startMs <= now).reduce((n, t) => n + t.runners.length, 0));
    for (const task of prepared) {
      const old = this.tasks.get(task.id);
      if (old) {
        await old.stopAll("replaced", false);
        old.dispose();
      }
      this.tasks.set(task.id, task);
      this.opts.log.info(
        { relay: task.id, targets: task.runners.length, files: task.spec.src.length, loop: task.spec.loop ?? "forever" },
        "relay task started",
      );
      task.arm();
    }
  }

  private taskOf(id: string): RelayTask {
    const task = this.tasks.get(id);
    if (!task) throw fail("not_found", `no relay task with id "${id.slice(0, 128)}"`);
    return task;
  }

  private async stopTasks(specs: RelayTaskSpec[]): Promise<void> {
    // Every id and target must match before anything stops.
    const plans = specs.map((spec) => {
      const task = this.taskOf(spec.id);
      for (const f of spec.forward) {
        if (!task.runners.some((r) => r.rec.target.url === f.target.url)) {
          throw fail("not_found", `relay task "${spec.id}" has no forward url ${displayUrl(f.target)}`);
        }
      }
      return { task, urls: spec.forward.map((f) => f.target.url) };
    });
    for (const { task, urls } of plans) await task.stopTargets(urls);
  }

  private async replaceLists(command: RelayCommand): Promise<void> {
    for (const spec of command.tasks) {
      const task = this.taskOf(spec.id);
      const next = new RelayTask(this, {
        ...task.rec,
        spec: { ...task.spec, src: spec.src, loop: spec.loop ?? task.spec.loop, index: spec.index, watermark: spec.watermark ?? task.spec.watermark },
      });
      await next.prepare();
      task.oldEntries = task.entries;
      task.rec.spec = next.spec;
      task.entries = next.entries;
      task.protocols = next.protocols;
      task.watermark = next.watermark;
      task.hasAudio = next.hasAudio;
      if (command.callbackUrl) task.rec.callbackUrl = command.callbackUrl;
      const start: PlayPosition = { pass: 0, entry: spec.index, offset: 0 };
      for (const r of task.runners) {
        if (r.rec.state === "running") r.switchList(spec.waitCrtUrlFinish, start);
        else if (r.rec.state === "scheduled") r.rec.position = start;
      }
      this.opts.log.info({ relay: task.id, files: spec.src.length, atCurrentEnd: spec.waitCrtUrlFinish }, "relay file list replaced");
      task.save();
    }
  }

  /**
   * cmd 5: targets stopped by cmd 2 (or the end time) within the resume window continue from where
   * they were, on `resetUrl` when given, with the task's list, loop and transcoding; the task's
   * other targets are left as they are. A task without such a target (never started, ended
   * naturally, or too long ago) is started as cmd 1 would.
   */
  private async resumeTasks(command: RelayCommand): Promise<void> {
    const now = Date.now();
    const fresh: RelayTaskSpec[] = [];
    const resumes: { task: RelayTask; runner: TargetRunner; to?: RelayTarget }[] = [];
    for (const spec of command.tasks) {
      const task = this.tasks.get(spec.id);
      const found = spec.forward.flatMap((f) => {
        const runner = task?.runners.find((r) => r.rec.target.url === f.target.url && r.rec.state === "stopped" && (r.rec.resumeUntil ?? 0) >= now);
        return runner && task ? [{ task, runner, to: f.resetTo }] : [];
      });
      if (found.length === 0) fresh.push(spec);
      else resumes.push(...found);
    }
    this.opts.supervisor.ensureRoomFor(resumes.length);
    for (const { task, runner, to } of resumes) {
      if (to) runner.rec.target = to;
      if (command.callbackUrl) task.rec.callbackUrl = command.callbackUrl;
      runner.rec.resumeUntil = undefined;
      this.opts.log.info({ relay: task.id, target: displayUrl(runner.rec.target), position: runner.rec.position }, "relay target resumed");
      void runner.start().then(() => task.save());
    }
    if (fresh.length > 0) await this.startTasks(command, fresh);
  }

  get(id: string): RelayTaskInfo | undefined {
    return this.tasks.get(id)?.info();
  }

  list(): RelayTaskInfo[] {
    return [...this.tasks.values()].map((t) => t.info());
  }

  /** Writes every task's state to the state file (temp file + rename: never a half-written file). */
  save(): void {
    // A server that never had a relay task leaves no state file behind.
    if (this.closed || this.tasks.size === 0) return;
    const records = [...this.tasks.values()].map((t) => t.rec);
    if (this.opts.persist) {
      this.opts.persist(records);
      return;
    }
    try {
      saveTaskRecords(this.opts.stateFile, records);
    } catch (err) {
      this.opts.log.error({ file: this.opts.stateFile, err: (err as Error).message }, "relay state not saved");
    }
  }

  /** Stops every FFmpeg and room of the relays; the state file keeps running tasks as running, for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.save();
    this.closed = true;
    clearInterval(this.saveTimer);
    await Promise.all(
      [...this.tasks.values()].map(async (t) => {
        t.dispose();
        await Promise.all(t.runners.map((r) => (r.rec.state === "running" ? r.stop("replaced") : undefined)));
        await Promise.race([t.flushCallbacks(), new Promise((r) => setTimeout(r, 1000).unref())]);
      }),
    );
    rmSync(this.listDir, { recursive: true, force: true });
  }
}
