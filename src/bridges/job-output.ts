// What an FFmpeg job prints, read as it comes:
// - stdout carries `-progress pipe:1` blocks (key=value lines ending with `progress=…`): bytes
//   written and media time, which tell "running" and stalls apart;
// - stderr lines go to the log with the job's fields, rate-limited per window, redacted, and the
//   last ones are kept to say why a run ended.

import type { Logger } from "../logger.js";

const KEEP_STDERR_LINES = 30;
const MAX_LINE = 500;

/** `[rtmp @ 0x55…] [error] text` → `text`. */
export function cleanStderrLine(line: string): string {
  return line
    .replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, "")
    .replace(/^\[(?:fatal|error|warning|panic|info|verbose|debug)\]\s*/i, "")
    .trim()
    .slice(0, MAX_LINE);
}

/** A line FFmpeg tagged as an error (`-loglevel level+…`). */
export function isErrorLine(line: string): boolean {
  return /\[(?:error|fatal|panic)\]/.test(line);
}

/** Progress of one run, from FFmpeg's `-progress` blocks on stdout. */
export class Progress {
  /** Bytes written by this run (total_size). */
  bytes = 0;
  /** Media time written by this run, µs (out_time_us). */
  outUs = 0;
  /** performance.now() of the last advance (or of the reset). */
  lastAdvanceAt = 0;
  private buf = "";
  private block: Record<string, string> = {};

  /** `onBlock(active)`: after each block; `active` when output advanced or frames were written. */
  constructor(private readonly onBlock: (active: boolean) => void) {}

  reset(): void {
    this.bytes = 0;
    this.outUs = 0;
    this.lastAdvanceAt = performance.now();
    this.buf = "";
    this.block = {};
  }

  push(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      const eq = line.indexOf("=");
      if (eq <= 0) continue;
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1);
      if (key !== "progress") {
        this.block[key] = value;
        continue;
      }
      this.take(this.block);
      this.block = {};
    }
    if (this.buf.length > 64 * 1024) this.buf = "";
  }

  private take(block: Record<string, string>): void {
    const size = Number(block.total_size);
    const outUs = Number(block.out_time_us);
    const frame = Number(block.frame);
    let advanced = false;
    if (Number.isFinite(size) && size > this.bytes) {
      this.bytes = size;
      advanced = true;
    }
    if (Number.isFinite(outUs) && outUs > this.outUs) {
      this.outUs = outUs;
      advanced = true;
    }
    if (advanced) this.lastAdvanceAt = performance.now();
    this.onBlock(advanced || frame > 0);
  }
}

export interface StderrOptions {
  log: Logger;
  linesPerWindow: number;
  windowMs: number;
  /** Applied to every line before it is logged or kept. */
  redact(text: string): string;
  /** The job's fields of each log line (job, kind, meta). */
  fields(): Record<string, unknown>;
  /** The running process, for the log. */
  pid(): number | undefined;
  /** While the job is being stopped, error lines ("Immediate exit requested") are no warnings. */
  stopping(): boolean;
}

/** FFmpeg's stderr of one job: split into lines, kept (the last few), logged within a rate. */
export class StderrLines {
  private readonly tail: string[] = [];
  private buf = "";
  private logged = 0;
  private suppressed = 0;
  private windowStart = 0;

  constructor(private readonly opts: StderrOptions) {}

  /** A new run: forget the last run's lines. */
  reset(): void {
    this.tail.length = 0;
    this.buf = "";
  }

  push(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.search(/[\r\n]/)) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      this.line(line);
    }
    if (this.buf.length > 4096) {
      this.line(this.buf);
      this.buf = "";
    }
  }

  /** The process ended: its unterminated last line counts too. */
  flush(): void {
    if (this.buf.trim() !== "") this.line(this.buf);
    this.buf = "";
  }

  /** Why the run ended, as FFmpeg said it: the last error line, else the last line ("" when none). */
  lastWords(): string {
    const errLine = [...this.tail].reverse().find(isErrorLine);
    const line = errLine ?? this.tail[this.tail.length - 1];
    return line ? cleanStderrLine(line) : "";
  }

  private line(raw: string): void {
    const { log } = this.opts;
    const line = this.opts.redact(raw.trim()).slice(0, MAX_LINE);
    if (line === "") return;
    this.tail.push(line);
    if (this.tail.length > KEEP_STDERR_LINES) this.tail.shift();
    const now = performance.now();
    if (now - this.windowStart >= this.opts.windowMs) {
      if (this.suppressed > 0) {
        log.warn({ ...this.opts.fields(), suppressed: this.suppressed }, "ffmpeg stderr lines suppressed");
      }
      this.windowStart = now;
      this.logged = 0;
      this.suppressed = 0;
    }
    if (this.logged < this.opts.linesPerWindow) {
      this.logged++;
      const fields = { ...this.opts.fields(), pid: this.opts.pid(), stderr: line };
      if (isErrorLine(line) && !this.opts.stopping()) log.warn(fields, "ffmpeg");
      else log.info(fields, "ffmpeg");
    } else {
      this.suppressed++;
    }
  }
}
