// What a supervised FFmpeg job is asked to do (JobSpec) and how it reports (JobState, JobInfo,
// JobExit). Room egress (HLS, RTMP restream), /start-stream jobs, ingest and relay tasks differ
// only in the JobSpec they hand the supervisor.

export type JobState = "starting" | "running" | "retrying" | "stopped" | "failed";

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
  /** "hls", "restream", "stream", "ingest", "relay". */
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
