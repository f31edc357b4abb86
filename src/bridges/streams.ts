// The transcoding service (docs/bridges.md, "/start-stream jobs"): POST /start-stream pulls an RTMP
// source into HLS at HLS_DIR/{streamId}/stream.m3u8, one supervised FFmpeg per streamId.
// Starting a running streamId ends the old FFmpeg gracefully first (idempotent restart). A start
// counts as successful when FFmpeg is still up after a short probe window (or already writing
// output); when it cannot be spawned, exits within the window, or the directory cannot be
// written, the caller gets the reason. Once started, a crash or a source that ends is restarted
// with back-off, and a source that goes silent is restarted after STALL_MS.

import type { Logger } from "../logger.js";
import { fail, isDomainError } from "../errors.js";
import { hlsOutputArgs, type HlsDirectories } from "./hls.js";
import type { Job } from "./job.js";
import type { JobInfo } from "./job-spec.js";
import type { Supervisor } from "./supervisor.js";

/** Two-second segments of the source's own GOPs (the video is copied). */
const SEGMENT_SECONDS = 2;
const LIST_SIZE = 6;
const STALL_MS = 20_000;

export interface StreamInfo extends JobInfo {
  streamId: string;
  hlsUrl: string;
  createdAt: string;
}

interface Entry {
  job: Job;
  createdAt: string;
}

export interface StreamJobsOptions {
  supervisor: Supervisor;
  hls: HlsDirectories;
  log: Logger;
  /** How long FFmpeg must stay up (unless it is already writing output) to count as started. */
  probeMs: number;
}

export class StreamJobs {
  private readonly entries = new Map<string, Entry>();
  /** Per streamId, the start/stop in progress: requests for one id run one after the other. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: StreamJobsOptions) {}

  private serial<T>(streamId: string, task: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(streamId) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.queues.set(streamId, tail);
    void tail.then(() => {
      if (this.queues.get(streamId) === tail) this.queues.delete(streamId);
    });
    return next;
  }

  /**
   * Starts (or restarts) the stream. Throws "start_failed" with the specific reason when FFmpeg
   * did not start, "conflict" when a room's HLS uses the name, "capacity" at the job limit.
   */
  start(streamId: string, rtmpUrl: string): Promise<void> {
    return this.serial(streamId, async () => {
      await this.stopEntry(streamId, false);
      const { hls, supervisor, log } = this.opts;
      const claim = hls.claim(streamId, "stream");
      let dir: string;
      try {
        dir = await hls.prepare(streamId);
      } catch (err) {
        hls.release(streamId, claim);
        const e = err as NodeJS.ErrnoException;
        throw fail("start_failed", `cannot write HLS directory ${hls.dirOf(streamId)}: ${e.code ?? e.message}`);
      }
      let job: Job;
      try {
        job = supervisor.start({
          id: `stream:${streamId}`,
          kind: "stream",
          meta: { streamId },
          protocols: ["rtmp", "rtmps", "tcp", "tls"],
          restart: "always",
          stallTimeoutMs: STALL_MS,
          prepare: async () => {
            await hls.prepare(streamId);
          },
          args: () => [
            "-i",
            rtmpUrl,
            "-map",
            "0:v?",
            "-map",
            "0:a?",
            "-c",
            "copy",
            ...hlsOutputArgs({ dir, segmentSeconds: SEGMENT_SECONDS, listSize: LIST_SIZE }),
          ],
          cleanup: async () => {
            // A failed job keeps its entry (GET /streams shows why); its directory goes.
            if (this.entries.get(streamId)?.job === job && job.state === "stopped") this.entries.delete(streamId);
            await hls.releaseAndRemove(streamId, claim);
          },
        });
      } catch (err) {
        hls.release(streamId, claim);
        if (isDomainError(err, "capacity")) throw err;
        throw fail("start_failed", (err as Error).message);
      }
      this.entries.set(streamId, { job, createdAt: new Date().toISOString() });
      try {
        await job.waitStarted(this.opts.probeMs);
      } catch (err) {
        const reason = (err as Error).message;
        // Nothing keeps running after a failed start: no retry behind the caller's back.
        await job.stop();
        this.entries.delete(streamId);
        log.warn({ streamId, reason }, "stream did not start");
        throw fail("start_failed", reason);
      }
      log.info({ streamId, job: job.id, pid: job.pid }, "stream started");
    });
  }

  /** Stops the stream; false when there is none. */
  stop(streamId: string): Promise<boolean> {
    return this.serial(streamId, () => this.stopEntry(streamId, true));
  }

  private async stopEntry(streamId: string, log: boolean): Promise<boolean> {
    const entry = this.entries.get(streamId);
    if (!entry) return false;
    this.entries.delete(streamId);
    await entry.job.stop();
    if (log) this.opts.log.info({ streamId }, "stream stopped");
    return true;
  }

  get(streamId: string): Job | undefined {
    return this.entries.get(streamId)?.job;
  }

  list(): StreamInfo[] {
    return [...this.entries].map(([streamId, e]) => ({
      ...e.job.info(),
      streamId,
      createdAt: e.createdAt,
      hlsUrl: `/hls/${encodeURIComponent(streamId)}/stream.m3u8`,
    }));
  }

  async close(): Promise<void> {
    await Promise.all([...this.entries.keys()].map((id) => this.stop(id)));
  }
}
