// The registry behind /metrics. Every series is listed in docs/api.md#metrics: a new one goes there too.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Supervisor } from "./bridges/supervisor.js";
import type { HookCallCounts } from "./hooks/callbacks.js";
import type { RecordingStats } from "./recording/recorder.js";
import { nackStats } from "./sfu/fast-sender.js";
import { workerStats } from "./sfu/fanout-workers.js";
import type { PlayerQuality, ReportDelta, RoomPlayerTotals } from "./sfu/player-quality.js";
import type { PublishedTrack } from "./sfu/publisher.js";
import type { Room } from "./sfu/room.js";
import type { Rooms } from "./sfu/rooms.js";

/** Extra series a component can report at scrape time (recording errors, bridges, ...). */
export interface MetricsSource {
  collect(registry: Registry): void;
}

/** Parts of a server whose series are optional (tests build registries without them). */
export interface MetricsExtras {
  /** Outgoing callbacks' calls by event and outcome. */
  hooks?: { readonly calls: HookCallCounts };
  /** Players' reports (docs/api.md, "Player statistics"). */
  players?: PlayerQuality;
}

/** The sum of `value` over a room's published tracks. */
function sumTracks(room: Room, value: (track: PublishedTrack) => number): number {
  let n = 0;
  for (const t of room.publisher?.tracks ?? []) n += value(t);
  return n;
}

/**
 * A counter per room rebuilt from the live rooms at every scrape (rooms without a source are
 * left out), so a room that ended leaves no label behind.
 */
function roomCounter(registry: Registry, rooms: Rooms, name: string, help: string, value: (room: Room) => number): void {
  new Counter({
    name,
    help,
    labelNames: ["room"],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of rooms.all()) if (r.publisher) this.inc({ room: r.name }, value(r));
    },
  });
}

/**
 * The registry behind /metrics. Per-room series are rebuilt from the live rooms at every scrape,
 * so a room that ended leaves no label behind, and the forwarding path only bumps plain numbers.
 */
export function createMetrics(rooms: Rooms, recording: RecordingStats, ffmpeg?: Supervisor, extras: MetricsExtras = {}): Registry {
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
  roomCounter(registry, rooms, "live_rtp_bytes_total", "RTP bytes received from the room's publisher", (r) => r.publisher?.bytes ?? 0);
  roomCounter(registry, rooms, "live_rtp_packets_total", "RTP packets received from the room's publisher", (r) => r.publisher?.packets ?? 0);
  roomCounter(registry, rooms, "live_rtp_sent_bytes_total", "RTP bytes sent to the room's viewers (header and payload, before SRTP)", (r) =>
    sumTracks(r, (t) => t.fanout.viewerBytes),
  );
  roomCounter(registry, rooms, "live_rtp_sent_packets_total", "RTP packets sent to the room's viewers", (r) => sumTracks(r, (t) => t.fanout.viewerPackets));
  roomCounter(registry, rooms, "live_keyframe_requests_received_total", "Keyframe requests (PLI/FIR) received from the room's viewers", (r) =>
    sumTracks(r, (t) => t.keyframes.requestsFromViewers),
  );
  roomCounter(registry, rooms, "live_keyframe_requests_sent_total", "Keyframe requests (PLI) sent to the room's publisher, after throttling", (r) =>
    sumTracks(r, (t) => t.keyframes.requestsSent),
  );
  new Counter({
    name: "live_failovers_total",
    help: "Switches of a room from its primary publisher to its backup",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(rooms.failovers);
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
  if (extras.hooks) registerHookMetrics(registry, extras.hooks.calls);
  if (extras.players) registerPlayerMetrics(registry, rooms, extras.players);
  return registry;
}

function registerHookMetrics(registry: Registry, calls: HookCallCounts): void {
  new Counter({
    name: "live_hook_calls_total",
    help: "Outgoing callback HTTP calls by event and outcome (ok, refused: a decision said no, error: no 200 answer)",
    labelNames: ["event", "outcome"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [event, outcomes] of Object.entries(calls)) {
        for (const [outcome, n] of Object.entries(outcomes)) this.inc({ event, outcome }, n);
      }
    },
  });
}

/** More freezes than this in one report are not credible: only this many are observed. */
const MAX_FREEZES_OBSERVED = 20;

/** Viewer-side series from players' reports; no per-session label, per-room series end with the room. */
function registerPlayerMetrics(registry: Registry, rooms: Rooms, players: PlayerQuality): void {
  const freezeDuration = new Histogram({
    name: "live_player_freeze_duration_seconds",
    help: "Duration of the video freezes players report (each freeze of a report at the report's mean)",
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  const jitterBuffer = new Histogram({
    name: "live_player_jitter_buffer_delay_seconds",
    help: "Players' mean jitter-buffer delay per emitted frame over each report's interval",
    buckets: [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
    registers: [registry],
  });
  const rtt = new Histogram({
    name: "live_player_rtt_seconds",
    help: "Round-trip time between players and the server, per report",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const loss = new Histogram({
    name: "live_player_packet_loss_ratio",
    help: "Share of packets players lost over each report's interval",
    buckets: [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
    registers: [registry],
  });
  const height = new Histogram({
    name: "live_player_frame_height_pixels",
    help: "Height of the picture players decode, per report",
    buckets: [144, 240, 360, 480, 720, 1080, 1440, 2160],
    registers: [registry],
  });
  players.addObserver({
    observe(d: ReportDelta) {
      if (d.freezes > 0) {
        const each = d.freezeSeconds / d.freezes;
        for (let i = Math.min(d.freezes, MAX_FREEZES_OBSERVED); i > 0; i--) freezeDuration.observe(each);
      }
      if (d.jitterBufferDelay !== undefined) jitterBuffer.observe(d.jitterBufferDelay);
      if (d.roundTripTime !== undefined) rtt.observe(d.roundTripTime);
      if (d.lossRatio !== undefined) loss.observe(d.lossRatio);
      if (d.frameHeight !== undefined) height.observe(d.frameHeight);
    },
  });
  const totals = (name: string, help: string, value: (t: Readonly<RoomPlayerTotals>) => number): void =>
    roomCounter(registry, rooms, name, help, (r) => value(players.totals(r)));
  totals("live_player_reports_total", "Player reports received", (t) => t.reports);
  totals("live_player_freezes_total", "Video freezes players reported", (t) => t.freezes);
  totals("live_player_frames_decoded_total", "Frames players decoded", (t) => t.framesDecoded);
  totals("live_player_frames_dropped_total", "Frames players dropped", (t) => t.framesDropped);
  totals("live_player_keyframe_requests_total", "Keyframe requests made for viewers frozen longer than 2 s by their reports", (t) => t.keyframeRequests);
  const viewers = (name: string, help: string, pick: "reporting" | "frozen"): void => {
    new Gauge({
      name,
      help,
      labelNames: ["room"],
      registers: [registry],
      collect() {
        this.reset();
        const now = performance.now();
        for (const r of rooms.all()) if (r.publisher) this.set({ room: r.name }, players.viewersOf(r, now)[pick]);
      },
    });
  };
  viewers("live_player_viewers_reporting", "Viewers whose player reported in the last 10 s", "reporting");
  viewers("live_player_viewers_frozen", "Viewers whose last report says the picture stands still", "frozen");
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
