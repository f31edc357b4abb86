// One forward target of a relay task (docs/bridges.md, "Relay tasks"): its FFmpeg runs (the
// concat demuxer reading a list written from files we resolved; one run loops over every pass when
// each entry's length is known, so passes join inside FFmpeg with no restart), its room for room:
// targets, and its position in the list, followed from FFmpeg's progress so a stop can be resumed
// and a crash restarts where it was.

import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { RtpSource } from "../../sfu/rtp-source.js";
import { randomSsrc, tracksFor } from "../ingest-args.js";
import type { Job } from "../job.js";
import { maskRtmpUrl, urlRedactor } from "../urls.js";
import { advance, advanceLooping, ffconcat, passSeconds, runArgs, type PlanEntry, type PlayPosition } from "./plan.js";
import type { RelayTarget, RelayTaskSpec } from "./request.js";
import type { RelaySources } from "./sources.js";
import type { RelayOptions, RelayTargetInfo, TargetRecord } from "./types.js";

const PROGRESS_MS = 1000;

/** A target's URL for listings and logs: an RTMP stream key masked. */
export const displayUrl = (t: RelayTarget): string => (t.kind === "rtmp" ? maskRtmpUrl(t.url) : t.url);

/** What a target needs from its task. */
export interface TargetHost {
  readonly id: string;
  readonly opts: Pick<RelayOptions, "supervisor" | "rooms" | "log" | "resumeMs">;
  readonly spec: RelayTaskSpec;
  /** Where the runs' ffconcat lists are written. */
  readonly dir: string;
  readonly entries: PlanEntry[];
  /** cmd 3 with waitCrtUrlFinish: the list still playing until its current file ends. */
  readonly oldEntries: PlanEntry[] | undefined;
  readonly protocols: string[];
  readonly unreadable: string | undefined;
  readonly hasAudio: boolean;
  readonly watermark: RelaySources["watermark"];
  /** Queues the task's callback about this target. */
  callback(target: TargetRunner, cmd: string, code: string, msg: string): void;
  save(): void;
  changed(): void;
}

/** One forward target of a task: its FFmpeg runs, its room (for room: targets), its position. */
export class TargetRunner {
  job: Job | undefined;
  private runStart: PlayPosition;
  private progressTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private room: RtpSource | undefined;
  private readonly ssrcs: [number, number] = [randomSsrc(), randomSsrc()];
  private runs = 0;
  /** Passes the current FFmpeg plays after its first (-1: until stopped), and the last of them. */
  private runLoops = 0;
  private runLastPass = 0;
  private switchTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly task: TargetHost,
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
    if (this.runStart.entry >= entries.length) {
      this.passEnded();
      return;
    }
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
        // Three tries of the source (docs/bridges.md, "Relay tasks"), then the target has failed.
        maxRestarts: 3,
        stallTimeoutMs: 30_000,
        redact: t.kind === "rtmp" ? urlRedactor(t.url) : undefined,
        prepare: () => {
          // A restart after a crash continues where the last run got to.
          writeFileSync(listFile, ffconcat(entries, this.runStart));
          this.runLoops = this.loopsFrom(this.runStart);
          this.runLastPass = this.runLoops < 0 ? Infinity : this.runStart.pass + this.runLoops;
          this.room?.restarted();
        },
        args: () =>
          runArgs({
            listFile,
            loops: this.runLoops,
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
      // Progress may stop short of the last pass's end by a frame: the run played all its passes.
      if (this.runLoops > 0) this.rec.position = { pass: this.runLastPass, entry: entries.length, offset: 0 };
      this.passEnded();
    });
  }

  /**
   * Passes one run plays after its first: every remaining pass when it starts at the top of the
   * list and each entry's length is known (its position is then followed across passes), else 0.
   */
  private loopsFrom(start: PlayPosition): number {
    if (start.entry !== 0 || start.offset !== 0 || passSeconds(this.task.entries) === undefined) return 0;
    const loop = this.task.spec.loop;
    return loop === undefined ? -1 : Math.max(0, loop - start.pass - 1);
  }

  /** Position from FFmpeg's progress; a per-file callback when a new file begins within a pass. */
  private follow(): void {
    const out = this.job?.info().outSeconds;
    if (out === undefined || this.stopping) return;
    const before = this.rec.position;
    const entries = this.task.entries;
    const now = this.runLoops !== 0 ? advanceLooping(entries, this.runStart, out, this.runLastPass) : advance(entries, this.runStart, out);
    this.rec.position = now;
    if (now.pass !== before.pass) this.task.save();
    if (this.task.spec.callBackFileInfo && now.pass === before.pass && now.entry !== before.entry && now.entry < entries.length) {
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
