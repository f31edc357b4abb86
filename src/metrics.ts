// The registry behind /metrics. Every series is listed in docs/api.md#metrics: a new one goes there too.
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { Supervisor } from "./bridges/supervisor.js";
import type { RecordingStats } from "./recording/recorder.js";
import { nackStats } from "./sfu/fast-sender.js";
import { workerStats } from "./sfu/fanout-workers.js";
import type { Rooms } from "./sfu/rooms.js";

/** Extra series a component can report at scrape time (recording errors, bridges, ...). */
export interface MetricsSource {
  collect(registry: Registry): void;
}

/**
 * The registry behind /metrics. Per-room series are rebuilt from the live rooms at every scrape,
 * so a room that ended leaves no label behind, and the forwarding path only bumps plain numbers.
 */
export function createMetrics(rooms: Rooms, recording: RecordingStats, ffmpeg?: Supervisor): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: "live_rooms",
    help: "Active rooms (rooms with a publisher)",
    registers: [registry],
    collect() {
      this.set(rooms.list().length);
    },
  });
  new Gauge({
    name: "live_subscribers",
    help: "Subscribers per room",
    labelNames: ["room"],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of rooms.all()) if (r.publisher) this.set({ room: r.name }, r.subscribers.size);
    },
  });
  new Counter({
    name: "live_rtp_bytes_total",
    help: "RTP bytes received from the room's publisher",
    labelNames: ["room"],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of rooms.all()) if (r.publisher) this.inc({ room: r.name }, r.publisher.bytes);
    },
  });
  new Counter({
    name: "live_rtp_packets_total",
    help: "RTP packets received from the room's publisher",
    labelNames: ["room"],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of rooms.all()) if (r.publisher) this.inc({ room: r.name }, r.publisher.packets);
    },
  });
  new Counter({
    name: "live_capacity_refusals_total",
    help: "WHIP/WHEP requests answered 503 because a limit was reached",
    labelNames: ["limit"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [limit, n] of Object.entries(rooms.refused)) this.inc({ limit }, n);
    },
  });
  new Gauge({
    name: "live_recordings_active",
    help: "Recording files being written",
    registers: [registry],
    collect() {
      this.set(recording.active);
    },
  });
  new Counter({
    name: "live_recording_errors_total",
    help: "Recordings stopped by a write error (disk full, directory unwritable)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(recording.failed);
    },
  });
  new Counter({
    name: "live_recording_bytes_total",
    help: "Bytes written to recordings",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(recording.bytes);
    },
  });
  new Counter({
    name: "live_nack_requested_packets_total",
    help: "Packets subscribers asked again for with NACKs (fast path)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(nackStats.requested);
    },
  });
  new Counter({
    name: "live_retransmitted_packets_total",
    help: "Packets sent again from the retransmission history after a NACK (fast path)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(nackStats.retransmitted);
    },
  });
  new Gauge({
    name: "live_forward_path",
    help: "The forwarding path viewers' packets take (FORWARD_PATH once resolved: native falls back to fast where the addon is not built): 1 on its label",
    labelNames: ["path"],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ path: rooms.forwardPath }, 1);
    },
  });
  new Gauge({
    name: "live_forward_workers",
    help: "Fan-out worker processes taking viewers (FORWARD_WORKERS)",
    registers: [registry],
    collect() {
      this.set(rooms.workerPids.length);
    },
  });
  new Counter({
    name: "live_forward_worker_dropped_batches_total",
    help: "Batches of packets not handed to a fan-out worker because it was behind",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(workerStats.droppedBatches);
    },
  });
  new Counter({
    name: "live_forward_worker_restarts_total",
    help: "Fan-out workers started again after one exited",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(workerStats.restarts);
    },
  });
  if (ffmpeg) registerFfmpegMetrics(registry, ffmpeg);
  return registry;
}

/** FFmpeg bridge jobs (HLS, restreams, ingest, /start-stream, relays), rebuilt at every scrape. */
function registerFfmpegMetrics(registry: Registry, ffmpeg: Supervisor): void {
  new Gauge({
    name: "live_ffmpeg_jobs",
    help: "FFmpeg jobs by kind and state",
    labelNames: ["kind", "state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const job of ffmpeg.list()) this.inc({ kind: job.kind, state: job.state });
    },
  });
  new Gauge({
    name: "live_ffmpeg_processes",
    help: "FFmpeg child processes running now",
    registers: [registry],
    collect() {
      this.set(ffmpeg.pids().length);
    },
  });
  new Gauge({
    name: "live_ffmpeg_job_limit",
    help: "MAX_FFMPEG_JOBS (0 = unlimited)",
    registers: [registry],
    collect() {
      this.set(Number.isFinite(ffmpeg.maxJobs) ? ffmpeg.maxJobs : 0);
    },
  });
  new Counter({
    name: "live_ffmpeg_restarts_total",
    help: "FFmpeg runs restarted by the supervisor after an exit or stall",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ffmpeg.restartsTotal);
    },
  });
  new Counter({
    name: "live_ffmpeg_jobs_rejected_total",
    help: "FFmpeg jobs refused because MAX_FFMPEG_JOBS were running (answered 503)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ffmpeg.rejectedTotal);
    },
  });
}
