import type { Logger } from "./logger.js";
import cors from "@fastify/cors";
import fastifyStatic from "@fastify/static";
import Fastify, { LogController, type FastifyInstance, type FastifyReply } from "fastify";
import { existsSync } from "node:fs";
import type { Socket } from "node:net";
import { createRequire } from "node:module";
import path from "node:path";
import { Authorizer } from "./auth/auth.js";
import { createBridges } from "./bridges/index.js";
import { Ingests } from "./bridges/ingest.js";
import { RelayTasks } from "./bridges/relay/tasks.js";
import type { Config } from "./config.js";
import { registerBridgeRoutes } from "./http/bridges.js";
import { registerErrorHandling } from "./http/errors.js";
import { registerIngestRoutes } from "./http/ingest.js";
import { createRateLimit, type RateLimit } from "./http/guard.js";
import { registerRecordRoutes } from "./http/records.js";
import { registerRelayRoutes } from "./http/relay.js";
import { sessionRoutes } from "./http/sessions.js";
import { registerStatusRoutes } from "./http/status.js";
import { Hooks, SessionHooks } from "./hooks/callbacks.js";
import { registerCallbackReceiver } from "./hooks/receiver.js";
import { createMetrics } from "./metrics.js";
import { PlaybackQueue, PlaybackSessions } from "./recording/playback.js";
import { createRecorderFactory, RecordingStats } from "./recording/recorder.js";
import { Rooms } from "./sfu/rooms.js";

/** The SDP body limit of the spec (hard-coded): larger bodies get 413. */
export const BODY_LIMIT = 1024 * 1024;

const CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS";
const CORS_HEADERS = "Content-Type, Authorization, X-Auth-Token, If-Match";
const CORS_EXPOSE = "Location, Link, ETag, Accept-Patch, Accept-Post, Retry-After";

declare module "fastify" {
  interface FastifyInstance {
    rooms: Rooms;
  }
}

/** The CORS headers of every answer, for the ones written before fastify sees the request. */
function corsHeaders(origin: string): string {
  return (
    `Access-Control-Allow-Origin: ${origin}\r\nAccess-Control-Allow-Methods: ${CORS_METHODS}\r\n` +
    `Access-Control-Allow-Headers: ${CORS_HEADERS}\r\nAccess-Control-Expose-Headers: ${CORS_EXPOSE}\r\n`
  );
}

/**
 * What Node's HTTP parser refuses (a broken request line, headers over the limit, a header
 * timeout) never reaches fastify: answer it in the spec's shape, with CORS, and let it use up the
 * sender's rate-limit bucket like any request.
 */
function clientErrorHandler(rateLimit: RateLimit, origin: string, log: () => Logger | undefined) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, message] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", "request header fields too large"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout", "request timeout"]
          : [400, "Bad Request", "bad request"];
    const answer = (code: number, text: string, error: string, extra = ""): void => {
      const body = JSON.stringify({ error });
      if (!socket.writable) return void socket.destroy();
      socket.end(
        `HTTP/1.1 ${code} ${text}\r\n${corsHeaders(origin)}${extra}Content-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    const ip = socket.remoteAddress ?? "unknown";
    log()?.info({ ip, code: err.code, status }, "malformed request");
    rateLimit.take(ip).then(
      (retryAfter) => (retryAfter === undefined ? answer(status, reason, message) : answer(429, "Too Many Requests", "too many requests", `Retry-After: ${retryAfter}\r\n`)),
      () => answer(status, reason, message),
    );
  };
}

/** The whole server as a fastify instance; `app.close()` ends every room and finalises recordings. */
export async function buildApp(config: Config): Promise<FastifyInstance> {
  const rateLimit = createRateLimit(config.rateLimitRps, config.rateLimitBurst);
  let appLog: Logger | undefined;
  const app = Fastify({
    clientErrorHandler: clientErrorHandler(rateLimit, config.allowedOrigin, () => appLog),
    logger: {
      level: config.logLevel,
      // Tokens travel in headers and in ?token=; neither may reach the log.
      redact: ["req.headers.authorization", "req.headers[\"x-auth-token\"]"],
    },
    bodyLimit: BODY_LIMIT,
    trustProxy: config.trustProxy,
    // One line per request, written on response (below), instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Every path parameter reaches its route, which gives its own 400 (a room name of 101+
    // characters is "invalid room name", not fastify's 414); Node's header limit bounds the URL.
    routerOptions: { maxParamLength: 16 * 1024 },
    // A broken %-escape in the path: 400 in the spec's error shape (fastify's own echoes the path).
    frameworkErrors: (err, _request, reply) => {
      const [status, error] = err.code === "FST_ERR_ASYNC_CONSTRAINT" ? [500, "internal server error"] : [400, "invalid URL"];
      (reply as unknown as FastifyReply).code(status).type("application/json; charset=utf-8").send({ error });
    },
  });
  app.addHook("onResponse", async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.url.replace(/([?&]token=)[^&]*/g, "$1[redacted]"),
        ip: request.ip,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      "request",
    );
  });

  const log: Logger = app.log;
  appLog = log;
  const recordingStats = new RecordingStats();
  const hooks = new SessionHooks(new Hooks({ urls: config.hooks, timeoutMs: config.hookTimeoutMs, serverId: config.serverId }, log));
  // Each finished room session's track files are merged into one playable .webm/.mp4.
  const playback = config.recordEnabled ? new PlaybackQueue({ dir: config.recordDir, log }) : undefined;
  const playbackSessions = playback ? new PlaybackSessions(playback) : undefined;
  // FFmpeg bridges (room HLS, RTMP restreams, /start-stream): one supervisor for every FFmpeg.
  const bridges = createBridges(config, log);
  const rooms = new Rooms({
    ice: config,
    liveness: { connectTimeoutMs: 20_000, silenceTimeoutMs: config.peerTimeoutSeconds * 1000 },
    maxSubsPerRoom: config.maxSubsPerRoom,
    maxRooms: config.maxRooms,
    maxSessions: config.maxSessions,
    gopCachePackets: config.gopCache ? 1024 : 0,
    forwardPath: config.forwardPath,
    forwardWorkers: config.forwardWorkers,
    events: { sessionEnded: (_kind, _room, id) => hooks.ended(id) },
    consumers: playbackSessions
      ? [
          bridges.consumer,
          playbackSessions.wrap(
            createRecorderFactory({
              dir: config.recordDir,
              log,
              stats: recordingStats,
              onFinished: (file, room, info) => {
                hooks.recorded({ room }, path.basename(file));
                // Collects the session's files; the merge starts once all its tracks are done.
                playbackSessions.finished(file, info);
              },
            }),
          ),
        ]
      : [bridges.consumer],
    log,
  });
  app.decorate("rooms", rooms);
  const auth = new Authorizer(config);
  const metrics = createMetrics(rooms, recordingStats, bridges.supervisor);

  await app.register(cors, {
    origin: config.allowedOrigin === "*" ? "*" : config.allowedOrigin,
    methods: CORS_METHODS.split(", "),
    allowedHeaders: CORS_HEADERS.split(", "),
    exposedHeaders: CORS_EXPOSE.split(", "),
    strictPreflight: false,
    optionsSuccessStatus: 204,
  });
  // The spec wants the methods and headers on every API response, not only on preflights.
  app.addHook("onSend", async (request, reply, payload) => {
    if (!reply.hasHeader("Access-Control-Allow-Methods")) reply.header("Access-Control-Allow-Methods", CORS_METHODS);
    if (!reply.hasHeader("Access-Control-Allow-Headers")) reply.header("Access-Control-Allow-Headers", CORS_HEADERS);
    if (request.method === "OPTIONS" && /^\/api\/wh(ip|ep)\/(publish|play)\//.test(request.url)) {
      reply.header("Accept-Post", "application/sdp");
    }
    return payload;
  });

  app.addHook("onRequest", async (request, reply) => {
    const url = request.url;
    if (url.startsWith("/api/") || url.startsWith("/records/")) await rateLimit.hook(request, reply);
  });

  registerErrorHandling(app);
  registerStatusRoutes(app, { config, rooms, auth, metrics });
  await app.register(sessionRoutes, { rooms, auth, iceServers: config.iceServers, hooks, ice: config });

  const webRoot = path.resolve(config.webDir);
  await app.register(fastifyStatic, {
    root: existsSync(webRoot) ? webRoot : path.resolve("."),
    prefix: "/",
    serve: existsSync(webRoot),
    index: ["index.html"],
    dotfiles: "deny",
    list: false,
  });
  // hls.js for the player's HLS fallback, served from the npm package: no CDN.
  await app.register(fastifyStatic, {
    root: path.dirname(createRequire(import.meta.url).resolve("hls.js/dist/hls.min.mjs")),
    prefix: "/vendor/hls/",
    decorateReply: false,
    index: false,
    list: false,
    allowedPath: (p) => /^\/?hls(\.light)?\.min\.mjs(\.map)?$/.test(p),
  });
  registerRecordRoutes(app, { auth, recordDir: config.recordDir });
  await registerBridgeRoutes(app, { auth, bridges, config });
  // Sources pulled into rooms (API, and SRS / nginx-rtmp publish callbacks), FFmpeg under the same supervisor.
  const ingests = new Ingests({
    rooms,
    supervisor: bridges.supervisor,
    log,
    policy: { mediaDir: config.mediaDir, allowedHosts: config.ingestAllowedHosts },
  });
  registerIngestRoutes(app, { auth, ingests });
  await registerCallbackReceiver(app, { ingests, log, secret: config.srsCallbackSecret, authEnabled: auth.enabled });
  // Relay tasks (VOD files looped out live to RTMP or into rooms), FFmpeg under the same supervisor.
  const relays = new RelayTasks({
    supervisor: bridges.supervisor,
    rooms,
    log,
    mediaDir: config.mediaDir,
    allowedHosts: config.ingestAllowedHosts,
    stateFile: path.resolve(config.relayStateFile),
    resumeMs: config.relayResumeHours * 3_600_000,
    callbackTimeoutMs: config.relayCallbackTimeoutMs,
    callbackTries: 3,
    callbackRetryMs: 1000,
  });
  await registerRelayRoutes(app, { relays, config });
  // Relays of the last run pick up in the background: the server answers at once.
  if (config.relayKey !== undefined) void relays.restore().catch((err: Error) => log.error({ err: err.message }, "relay tasks not restored"));

  app.addHook("onClose", async () => {
    // Relays and ingest FFmpegs first: their rooms end with them (relay state stays on disk for the next start).
    await relays.close();
    await ingests.close();
    await rooms.close();
    // The rooms stopped their bridges as they closed; /start-stream jobs and anything left end here.
    await bridges.close();
    // After the rooms, whose recordings are final now: a merge still queued or running is stopped.
    await playback?.close();
    // End notifications of the sessions just closed go out before the process may exit.
    await hooks.hooks.close();
  });
  return app;
}
