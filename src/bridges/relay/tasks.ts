// Relay tasks (seed 002, bridges.md §5): VOD files played out as a live stream to RTMP targets or
// into a local room, looped, windowed, scheduled, stopped and resumed, with the seed's callbacks.
// One FFmpeg per target and pass over the file list (the concat demuxer reads a list we write from
// files we resolved), under the one supervisor. The position in the list is followed from FFmpeg's
// progress, so a stop can be resumed and a crash restarts where it was. Task state is a JSON file
// written atomically; a restarted server picks its tasks up again.

import type { Logger } from "../../logger.js";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Rooms } from "../../sfu/rooms.js";
import type { RtpSource } from "../../sfu/rtp-source.js";
import { probeMedia } from "../probe.js";
import { randomSsrc, tracksFor } from "../ingest-args.js";
import { resolveIngestSource, type IngestSource } from "../ingest-source.js";
import { checkUrl, fileType, IMAGE_FILE_TYPES, resolveMediaFile } from "../policy.js";
import { fail, isDomainError } from "../../errors.js";
import type { Job, Supervisor } from "../supervisor.js";
import { maskRtmpUrl, urlRedactor } from "../urls.js";
import { advance, ffconcat, planEntries, runArgs, type PlanEntry, type PlayPosition, type ResolvedFile } from "./plan.js";
import { type Gravity, type RelayCommand, type RelayTarget, type RelayTaskSpec } from "./request.js";

export interface RelayOptions {
  supervisor: Supervisor;
  rooms: Rooms;
  log: Logger;
  mediaDir: string;
  allowedHosts: readonly string[];
  /** Where task state is kept across restarts. */
  stateFile: string;
  /** How long a stopped task's position can be resumed (the seed: 48 h). */
  resumeMs: number;
  callbackTimeoutMs: number;
  callbackTries: number;
  /** Between callback tries. */
  callbackRetryMs: number;
}

export type TargetState = "scheduled" | "running" | "stopped" | "finished" | "failed";

interface TargetRecord {
  target: RelayTarget;
  state: TargetState;
  position: PlayPosition;
  /** Until when a stopped target may be resumed (ms since the epoch). */
  resumeUntil?: number;
  lastError?: string;
}

interface TaskRecord {
  spec: RelayTaskSpec;
  callbackUrl?: string;
  createdAt: string;
  targets: TargetRecord[];
}

export interface RelayTargetInfo {
  url: string;
  state: TargetState;
  /** 1-based file of src being played, pass over the list (1-based), seconds into the entry. */
  file?: number;
  pass: number;
  offsetSeconds: number;
  resumableUntil?: string;
  lastError?: string;
  job?: string;
}

export interface RelayTaskInfo {
  id: string;
  state: TargetState;
  createdAt: string;
  src: string[];
  loop: number | null;
  start?: string;
  end?: string;
  targets: RelayTargetInfo[];
}

const PROBE_TIMEOUT_MS = 10_000;
const PROGRESS_MS = 1000;
const SAVE_MS = 5000;
const MAX_TIMER_MS = 2 ** 31 - 1;

const displayUrl = (t: RelayTarget) => (t.kind === "rtmp" ? maskRtmpUrl(t.url) : t.url);

/** ffprobe's duration and creation_time of a source, under the source's whitelist. */
async function probeSource(src: IngestSource): Promise<ResolvedFile & { readable: boolean; audio: boolean }> {
  const p = await probeMedia(src.input, src.protocols, PROBE_TIMEOUT_MS);
  return { input: src.input, duration: p?.duration, creationMs: p?.creationMs, readable: p !== undefined, audio: p?.audio !== undefined };
}

/** One forward target of a task: its FFmpeg runs, its room (for room: targets), its position. */
class TargetRunner {
  job: Job | undefined;
  private runStart: PlayPosition;
  private progressTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private room: RtpSource | undefined;
  private readonly ssrcs: [number, number] = [randomSsrc(), randomSsrc()];
  private runs = 0;
  private switchTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly task: RelayTask,
    readonly rec: TargetRecord,
  ) {
    this.runStart = { ...rec.position };
  }

  get id(): string {
    return `relay:${this.task.id}:${this.rec.target.url}`;
  }

  /** Starts (or restarts) playing from rec.position. */
  async start(): Promise<void> {
    const { opts } = this.task;
    this.stopping = false;
    this.rec.state = "running";
    this.rec.lastError = undefined;
    if (this.task.unreadable) return this.fail(this.task.unreadable);
    const t = this.rec.target;
    if (t.kind === "room" && (!this.room || this.room.closed)) {
      try {
        // A room gets an audio track when every file of the list has audio (one FFmpeg plays them all).
        this.room = await opts.rooms.ingest(t.room, tracksFor({ video: true, audio: this.task.hasAudio, copyVideo: false }));
      } catch (err) {
        this.fail(`room ${t.room}: ${(err as Error).message}`);
        return;
      }
      const room = this.room;
      room.onEnd(() => {
        // Closed from elsewhere (admin close, shutdown): nothing left to feed.
        if (this.room === room && !this.stopping) void this.stop("stopped");
      });
    }
    this.task.callback(this, "1", "0", "Start pushing!");
    this.launch();
  }

  private launch(): void {
    const { opts } = this.task;
    this.runStart = { ...this.rec.position };
    const entries = this.task.entries;
    if (this.runStart.entry >= entries.length) return this.passEnded();
    const listFile = path.join(this.task.dir, `${randomBytes(6).toString("hex")}.ffconcat`);
    const t = this.rec.target;
    this.runs++;
    let job: Job;
    try {
      job = opts.supervisor.start({
        id: `${this.id}:${this.runs}`,
        kind: "relay",
        meta: { relay: this.task.id, target: displayUrl(t) },
        protocols: this.task.protocols,
        restart: "on-failure",
        // The seed's source retries: three tries, then the target has failed.
        maxRestarts: 3,
        stallTimeoutMs: 30_000,
        redact: t.kind === "rtmp" ? urlRedactor(t.url) : undefined,
        prepare: () => {
          // A restart after a crash continues where the last run got to.
          writeFileSync(listFile, ffconcat(entries, this.runStart));
        },
        args: () =>
          runArgs({
            listFile,
            watermark: this.task.watermark,
            fops: this.task.spec.fops,
            target: t,
            // A list replaced by cmd 3 may lack the audio the room was opened with: video only then.
            ports: this.task.hasAudio ? this.room?.ports : this.room?.ports.slice(0, 1),
            ssrcs: this.ssrcs,
          }),
        onExit: () => {
          this.follow();
          this.runStart = { ...this.rec.position };
        },
        cleanup: () => rmSync(listFile, { force: true }),
      });
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    this.job = job;
    clearInterval(this.progressTimer);
    this.progressTimer = setInterval(() => this.follow(), PROGRESS_MS);
    this.progressTimer.unref();
    void job.done.then(() => {
      if (this.job !== job) return;
      clearInterval(this.progressTimer);
      this.follow();
      if (this.stopping) return;
      if (job.state === "failed") return this.fail(job.lastError ?? "FFmpeg failed");
      this.passEnded();
    });
  }

  /** Position from FFmpeg's progress; a per-file callback when a new file begins. */
  private follow(): void {
    const out = this.job?.info().outSeconds;
    if (out === undefined || this.stopping) return;
    const before = this.rec.position;
    const now = advance(this.task.entries, this.runStart, out);
    this.rec.position = now;
    const entries = this.task.entries;
    if (this.task.spec.callBackFileInfo && now.entry !== before.entry && now.entry < entries.length) {
      const e = entries[now.entry]!;
      if (entries[before.entry]?.file !== e.file) this.task.callback(this, "1", "0", `Start pushing file ${this.task.spec.src[e.file]?.url ?? ""}`);
    }
  }

  private passEnded(): void {
    const { spec } = this.task;
    const nextPass = this.rec.position.pass + 1;
    if (spec.loop !== undefined && nextPass >= spec.loop) {
      void this.finish();
      return;
    }
    this.rec.position = { pass: nextPass, entry: 0, offset: 0 };
    this.task.save();
    this.launch();
  }

  private async finish(): Promise<void> {
    this.stopping = true;
    this.rec.state = "finished";
    this.rec.resumeUntil = undefined;
    await this.release();
    this.task.callback(this, "1", "0", "Push finished!");
    this.task.changed();
  }

  fail(reason: string): void {
    this.stopping = true;
    this.rec.state = "failed";
    this.rec.lastError = reason;
    this.task.opts.log.warn({ relay: this.task.id, target: displayUrl(this.rec.target), reason }, "relay target failed");
    void this.release();
    this.task.callback(this, "1", "1", `Push failed: ${reason}`);
    this.task.changed();
  }

  /** Stops playing; "stopped" remembers the position for cmd 5. */
  async stop(state: "stopped" | "replaced"): Promise<void> {
    this.follow();
    this.stopping = true;
    if (state === "stopped") {
      this.rec.state = "stopped";
      this.rec.resumeUntil = Date.now() + this.task.opts.resumeMs;
    }
    await this.release();
  }

  /** cmd 3: the list changed; at once, or when the current file has played out. */
  switchList(atCurrentEnd: boolean, start: PlayPosition): void {
    clearTimeout(this.switchTimer);
    const go = async () => {
      if (this.rec.state !== "running") return;
      this.stopping = true;
      const job = this.job;
      this.job = undefined;
      clearInterval(this.progressTimer);
      await job?.stop();
      this.stopping = false;
      this.rec.position = { ...start };
      this.launch();
    };
    if (!atCurrentEnd) return void go();
    const entries = this.task.oldEntries ?? this.task.entries;
    const cur = entries[this.rec.position.entry];
    const left = cur?.seconds !== undefined ? Math.max(0, cur.seconds - this.rec.position.offset) : 0;
    this.switchTimer = setTimeout(() => void go(), left * 1000);
    this.switchTimer.unref();
  }

  private async release(): Promise<void> {
    clearInterval(this.progressTimer);
    clearTimeout(this.switchTimer);
    const job = this.job;
    this.job = undefined;
    await job?.stop();
    const room = this.room;
    this.room = undefined;
    await room?.close("publisher-left");
  }

  info(): RelayTargetInfo {
    const p = this.rec.position;
    const e = this.task.entries[p.entry];
    return {
      url: displayUrl(this.rec.target),
      state: this.rec.state,
      ...(e ? { file: e.file + 1 } : {}),
      pass: p.pass + 1,
      offsetSeconds: Math.round(p.offset * 10) / 10,
      ...(this.rec.state === "stopped" && this.rec.resumeUntil ? { resumableUntil: new Date(this.rec.resumeUntil).toISOString() } : {}),
      ...(this.rec.lastError ? { lastError: this.rec.lastError } : {}),
      ...(this.job ? { job: this.job.id } : {}),
    };
  }
}

class RelayTask {
  entries: PlanEntry[] = [];
  /** cmd 3 with waitCrtUrlFinish: the list still playing until its current file ends. */
  oldEntries: PlanEntry[] | undefined;
  protocols: string[] = ["file"];
  /** Why the sources cannot be played (set by prepare() when one could not be read). */
  unreadable: string | undefined;
  /** Every file has audio. */
  hasAudio = true;
  watermark: { input: string; gravity: Gravity } | undefined;
  readonly runners: TargetRunner[] = [];
  readonly dir: string;
  private startTimer: NodeJS.Timeout | undefined;
  private endTimer: NodeJS.Timeout | undefined;
  private callbacks: Promise<void> = Promise.resolve();

  constructor(
    readonly manager: RelayTasks,
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

  /** Resolves every source under the URL policy ("invalid_input" on a bad one) and probes them into entries. */
  async prepare(): Promise<void> {
    const policy = { mediaDir: this.opts.mediaDir, allowedHosts: this.opts.allowedHosts };
    const sources: IngestSource[] = [];
    for (const [i, s] of this.spec.src.entries()) {
      let src: IngestSource;
      try {
        src = await resolveIngestSource(s.url, policy);
      } catch (err) {
        if (isDomainError(err)) throw fail(err.kind, `src[${i}]: ${err.message}`);
        throw err;
      }
      if (src.kind === "rtmp" || src.kind === "hls") throw fail("invalid_input", `src[${i}]: a relay plays files (.mp4, .flv, … under MEDIA_DIR, or http(s) .mp4/.flv), not live or HLS sources`);
      sources.push(src);
    }
    const protocols = new Set(["file"]);
    for (const s of sources) for (const p of s.protocols) protocols.add(p);
    let watermark: typeof this.watermark;
    if (this.spec.watermark) {
      const img = await this.resolveImage(this.spec.watermark.image);
      for (const p of img.protocols) protocols.add(p);
      watermark = { input: img.input, gravity: this.spec.watermark.gravity };
    }
    const files = await Promise.all(sources.map(probeSource));
    // A source that cannot be read now (host down, file not there yet) is no fault of the request:
    // the task is accepted and its targets fail with a code 1 callback when they start.
    const unreadable = files.findIndex((f) => !f.readable);
    this.unreadable = unreadable >= 0 ? `src[${unreadable}] ${this.spec.src[unreadable]?.url ?? ""} cannot be read` : undefined;
    if (this.unreadable) {
      this.entries = [];
      this.protocols = [...protocols];
      this.watermark = watermark;
      return;
    }
    this.entries = planEntries(
      files,
      this.spec.src.map((s) => ({ windows: s.windows, absWindows: s.absWindows })),
    );
    this.protocols = [...protocols];
    this.watermark = watermark;
    this.hasAudio = files.every((f) => f.audio);
  }

  /** A watermark image: http(s) .png/.jpg on an allowed host, or a .png/.jpg file under MEDIA_DIR. */
  private async resolveImage(raw: string): Promise<IngestSource> {
    if (!IMAGE_FILE_TYPES.includes(fileType(raw))) throw fail("invalid_input", "wmimage must be a .png or .jpg image");
    if (/^https?:\/\//i.test(raw)) {
      const verdict = checkUrl(raw, "image", this.opts.allowedHosts);
      if (!verdict.ok && verdict.problem === "host_not_allowed") throw fail("invalid_input", `wmimage: host "${verdict.host ?? ""}" is not in INGEST_ALLOWED_HOSTS`);
      if (!verdict.ok) throw fail("invalid_input", "wmimage: invalid URL");
      return { kind: "http", input: raw, display: raw, protocols: ["http", "https", "tcp", "tls"], live: false };
    }
    const file = await resolveMediaFile(raw, this.opts.mediaDir, IMAGE_FILE_TYPES);
    if (!file.ok) {
      const lexical = file.problem === "colon" || file.problem === "dot_segment";
      throw fail("invalid_input", lexical ? "wmimage: file paths must be under MEDIA_DIR" : "wmimage: no such image under MEDIA_DIR");
    }
    return { kind: "file", input: `file:${file.real}`, display: file.display, protocols: ["file"], live: false };
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

  /** The seed's callback for one target, delivered in order per task. */
  callback(r: TargetRunner, cmd: string, code: string, msg: string): void {
    const url = this.rec.callbackUrl;
    if (!url) return;
    const body = JSON.stringify({
      msg,
      code,
      srcurl: JSON.stringify(this.spec.src.map((s) => ({ url: s.url }))),
      cmd,
      id: this.id,
      forwardurl: r.rec.target.url,
    });
    this.callbacks = this.callbacks.then(() => this.manager.deliver(url, body, this.id));
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

interface StateFile {
  version: 1;
  tasks: TaskRecord[];
}

export class RelayTasks {
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
    let state: StateFile;
    try {
      state = JSON.parse(readFileSync(this.opts.stateFile, "utf8")) as StateFile;
    } catch {
      return;
    }
    if (state.version !== 1 || !Array.isArray(state.tasks)) return;
    const now = Date.now();
    for (const rec of state.tasks) {
      for (const t of rec.targets) if (t.state === "stopped" && (t.resumeUntil ?? 0) < now) t.state = "finished";
      const task = new RelayTask(this, rec);
      try {
        await task.prepare();
        if (this.closed) return;
      } catch (err) {
        for (const t of rec.targets) if (t.state === "running" || t.state === "scheduled") Object.assign(t, { state: "failed", lastError: (err as Error).message });
        this.tasks.set(task.id, task);
        continue;
      }
      this.tasks.set(task.id, task);
      if (rec.spec.endMs !== undefined && rec.spec.endMs <= now) {
        for (const t of rec.targets) if (t.state === "running" || t.state === "scheduled") t.state = "finished";
        continue;
      }
      if (rec.targets.some((t) => t.state === "running" || t.state === "scheduled")) {
        this.opts.log.info({ relay: task.id }, "relay task restored");
        task.arm();
      }
    }
    this.save();
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
      this.opts.log.info({ relay: task.id, targets: task.runners.length, files: task.spec.src.length, loop: task.spec.loop ?? "forever" }, "relay task started");
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
      const next = new RelayTask(this, { ...task.rec, spec: { ...task.spec, src: spec.src, loop: spec.loop ?? task.spec.loop, index: spec.index, watermark: spec.watermark ?? task.spec.watermark } });
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

  /** POSTs a callback body: delivered on HTTP 200 with a non-empty body, else tried again. */
  async deliver(url: string, body: string, id: string): Promise<void> {
    const { callbackTries, callbackTimeoutMs, callbackRetryMs, log } = this.opts;
    let last = "";
    for (let i = 0; i < callbackTries; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, callbackRetryMs).unref());
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body,
          signal: AbortSignal.timeout(callbackTimeoutMs),
          redirect: "manual",
        });
        const text = await res.text();
        if (res.status === 200 && text.trim() !== "") return;
        last = `HTTP ${res.status}${text.trim() === "" ? " with an empty body" : ""}`;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    log.warn({ relay: id, tries: callbackTries, reason: last }, "relay callback not delivered");
  }

  /** Writes every task's state to the state file (temp file + rename: never a half-written file). */
  save(): void {
    // A server that never had a relay task leaves no state file behind.
    if (this.closed || this.tasks.size === 0) return;
    const state: StateFile = { version: 1, tasks: [...this.tasks.values()].map((t) => t.rec) };
    try {
      mkdirSync(path.dirname(this.opts.stateFile), { recursive: true });
      const tmp = `${this.opts.stateFile}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(state));
      renameSync(tmp, this.opts.stateFile);
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

