// The composition root: the one place that builds every long-lived part of a server from its
// Config, hands each part the others it needs, and closes them again in the right order. Nothing
// else wires; the HTTP app (src/app.ts) is built from the Server this returns.

import path from "node:path";
import { pino, type Logger as PinoLogger } from "pino";
import type { Registry } from "prom-client";
import { Authorizer } from "./auth/auth.js";
import { createBridges, type Bridges } from "./bridges/index.js";
import { Ingests } from "./bridges/ingest.js";
import { RelayTasks } from "./bridges/relay/tasks.js";
import type { TaskRecord } from "./bridges/relay/types.js";
import type { StreamJobSpec } from "./cluster/jobs.js";
import { registerClusterMetrics } from "./cluster/metrics.js";
import { ClusterNode } from "./cluster/node.js";
import type { Config } from "./config.js";
import { Hooks, SessionHooks } from "./hooks/callbacks.js";
import { CallbackReceiver } from "./hooks/receiver.js";
import type { Logger } from "./logger.js";
import { createMetrics } from "./metrics.js";
import { PlaybackQueue, PlaybackSessions } from "./recording/playback.js";
import { createRecorderFactory, RecordingStats } from "./recording/recorder.js";
import { PlayerQuality } from "./sfu/player-quality.js";
import { effectiveForwardPath } from "./sfu/native.js";
import { Rooms } from "./sfu/rooms.js";

/** Everything one server runs; built by createServer(), ended by close(). */
export interface Server {
  readonly config: Config;
  /** pino, shared with the HTTP app so every line goes to one stream. */
  readonly log: PinoLogger;
  readonly auth: Authorizer;
  readonly rooms: Rooms;
  /** Outgoing callbacks (on_connect, on_publish, …, on_record). */
  readonly hooks: SessionHooks;
  /** FFmpeg: the supervisor, room HLS and restreams, /start-stream jobs. */
  readonly bridges: Bridges;
  /** Sources pulled into rooms (API and RTMP servers' publish callbacks). */
  readonly ingests: Ingests;
  /** The SRS / nginx-rtmp publish-callback receiver, on top of ingests. */
  readonly callbacks: CallbackReceiver;
  /** Relay tasks: files looped out live to RTMP or into rooms. */
  readonly relays: RelayTasks;
  readonly recordingStats: RecordingStats;
  /** What players report of their playback (POST /api/whep/session/{id}/stats), for /metrics. */
  readonly players: PlayerQuality;
  /** The registry behind /metrics. */
  readonly metrics: Registry;
  /** This node's part in a cluster (REDIS_URL); undefined on a single node. */
  readonly cluster?: ClusterNode;
  /** Background work that must not delay answering requests (relay tasks of the last run). */
  start(): void;
  /**
   * Ends everything, once: relays and ingests (their rooms end with them), rooms (recordings
   * finalised), the bridges' FFmpegs, queued recording merges, then the end notifications of the
   * sessions just closed. Idempotent: later calls return the same promise.
   */
  close(): Promise<void>;
}

/** The process-wide logger: level from LOG_LEVEL, tokens never written. */
export function createLogger(config: Pick<Config, "logLevel">): PinoLogger {
  return pino({
    level: config.logLevel,
    // Tokens travel in headers and in ?token=; neither may reach the log.
    redact: ["req.headers.authorization", 'req.headers["x-auth-token"]'],
  });
}

export function createServer(config: Config, log: PinoLogger = createLogger(config)): Server {
  const core: Logger = log;
  const auth = new Authorizer(config);
  const recordingStats = new RecordingStats();
  const hooks = new SessionHooks(new Hooks({ urls: config.hooks, timeoutMs: config.hookTimeoutMs, serverId: config.serverId }, core));
  // Each finished room session's track files are merged into one playable .webm/.mp4.
  const playback = config.recordEnabled ? new PlaybackQueue({ dir: config.recordDir, log: core }) : undefined;
  const playbackSessions = playback ? new PlaybackSessions(playback) : undefined;
  const bridges = createBridges(config, core);
  const recorder = playbackSessions?.wrap(
    createRecorderFactory({
      dir: config.recordDir,
      log: core,
      stats: recordingStats,
      onFinished: (file, room, info) => {
        hooks.recorded({ room }, path.basename(file));
        // Collects the session's files; the merge starts once all its tracks are done.
        playbackSessions.finished(file, info);
      },
    }),
  );
  const liveness = { connectTimeoutMs: 20_000, silenceTimeoutMs: config.peerTimeoutSeconds * 1000 };
  const cluster = config.cluster ? new ClusterNode(config.cluster, { ice: config, liveness }, core) : undefined;
  const forwarding = effectiveForwardPath(config.forwardPath);
  if (forwarding.fallbackReason) core.warn({ reason: forwarding.fallbackReason }, "FORWARD_PATH=native is unavailable: the JavaScript fast path runs");
  const rooms = new Rooms({
    ice: config,
    liveness,
    // A cluster counts viewers over every node (src/http/cluster.ts); a node's own pulls are no viewers.
    maxSubsPerRoom: cluster ? 0 : config.maxSubsPerRoom,
    maxRooms: config.maxRooms,
    maxSessions: config.maxSessions,
    gopCachePackets: config.gopCache ? 1024 : 0,
    graceMs: config.roomGraceSeconds * 1000,
    failoverMs: config.failoverMs,
    forwardPath: forwarding.path,
    forwardWorkers: config.forwardWorkers,
    events: { sessionEnded: (_kind, _room, id) => hooks.ended(id), sourceSwitched: (room, to, why) => hooks.switched(room, to, why) },
    consumers: recorder ? [bridges.consumer, recorder] : [bridges.consumer],
    log: core,
    directory: cluster,
  });
  cluster?.bind(rooms);
  const ingests = new Ingests({
    rooms,
    supervisor: bridges.supervisor,
    log: core,
    policy: { mediaDir: config.mediaDir, allowedHosts: config.ingestAllowedHosts },
  });
  const callbacks = new CallbackReceiver({ ingests, log: core, secret: config.srsCallbackSecret, authEnabled: auth.enabled });
  const relays = new RelayTasks({
    supervisor: bridges.supervisor,
    rooms,
    log: core,
    mediaDir: config.mediaDir,
    allowedHosts: config.ingestAllowedHosts,
    stateFile: path.resolve(config.relayStateFile),
    resumeMs: config.relayResumeHours * 3_600_000,
    callbackTimeoutMs: config.relayCallbackTimeoutMs,
    callbackTries: 3,
    callbackRetryMs: 1000,
    // A cluster keeps tasks in Redis, where another node finds them when this one dies.
    persist: cluster ? (records) => persistRelays(cluster, records, core) : undefined,
  });
  if (cluster) {
    cluster.jobs.handle("stream", {
      start: (id, spec) => bridges.streams.start(id, (JSON.parse(spec) as StreamJobSpec).rtmpUrl),
      stop: async (id) => void (await bridges.streams.stop(id)),
    });
    cluster.jobs.handle("relay", { start: (_id, spec) => relays.adopt(JSON.parse(spec) as TaskRecord), stop: (id) => relays.drop(id) });
  }
  const players = new PlayerQuality();
  const metrics = createMetrics(rooms, recordingStats, bridges.supervisor, { hooks: hooks.hooks, players });
  if (cluster) registerClusterMetrics(metrics, cluster);

  let started = false;
  let closing: Promise<void> | undefined;
  return {
    config,
    log,
    auth,
    rooms,
    hooks,
    bridges,
    ingests,
    callbacks,
    relays,
    recordingStats,
    players,
    metrics,
    cluster,
    start() {
      if (started || closing) return;
      started = true;
      core.info({ forwardPath: rooms.forwardPath, forwardWorkers: config.forwardWorkers }, "forwarding path");
      // Relays of the last run pick up in the background: the server answers at once. A
      // cluster's are in Redis, taken over by the nodes that outlived this one.
      if (config.relayKey !== undefined && !cluster) void relays.restore().catch((err: Error) => core.error({ err: err.message }, "relay tasks not restored"));
    },
    close: () =>
      (closing ??= (async () => {
        // Relays and ingest FFmpegs first: their rooms end with them (relay state stays on disk for the next start).
        await relays.close();
        await ingests.close();
        await rooms.close();
        // After the rooms, whose leases it gives up; then it leaves the registry.
        await cluster?.close();
        // The rooms stopped their bridges as they closed; /start-stream jobs and anything left end here.
        await bridges.close();
        // After the rooms, whose recordings are final now: a merge still queued or running is stopped.
        await playback?.close();
        // End notifications of the sessions just closed go out before the process may exit.
        await hooks.hooks.close();
      })()),
  };
}

/** The relay tasks this node runs, into Redis (a failed write is tried again with the next save). */
function persistRelays(cluster: ClusterNode, records: TaskRecord[], log: Logger): void {
  for (const rec of records) {
    if (!cluster.jobs.holds("relay", rec.spec.id)) continue;
    cluster.jobs
      .put("relay", rec.spec.id, JSON.stringify(rec))
      .catch((err: Error) => log.warn({ relay: rec.spec.id, err: err.message }, "relay task not stored"));
  }
}
