import cors from "@fastify/cors";
import fastifyStatic from "@fastify/static";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import { existsSync } from "node:fs";
import type { Socket } from "node:net";
import { createRequire } from "node:module";
import path from "node:path";
import { registerBridgeRoutes } from "./http/bridges.js";
import { jobRouting, registerClusterPeers, registerClusterRoutes, remoteRecords } from "./http/cluster.js";
import { registerErrorHandling } from "./http/errors.js";
import { registerEventRoutes } from "./http/events.js";
import { registerIngestRoutes } from "./http/ingest.js";
import { playerStatsRoutes } from "./http/player-stats.js";
import { AJV_OPTIONS, DOCS_PREFIX, registerOpenApi, registerOpenApiRoutes } from "./http/openapi.js";
import { createRateLimit, type RateLimit } from "./http/guard.js";
import { registerRecordRoutes } from "./http/records.js";
import { registerRelayRoutes } from "./http/relay.js";
import { sessionRoutes } from "./http/sessions.js";
import { registerStatusRoutes } from "./http/status.js";
import { registerCallbackRoutes } from "./http/srs-callbacks.js";
import type { Logger } from "./logger.js";
import type { Server } from "./server.js";

/** The request body limit (docs/api.md, "Names and limits"): larger bodies get 413. */
export const BODY_LIMIT = 1024 * 1024;

const CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS";
const CORS_HEADERS = "Content-Type, Authorization, X-Auth-Token, If-Match";
const CORS_EXPOSE = "Location, Link, ETag, Accept-Patch, Accept-Post, Retry-After";

/** The CORS headers of every answer, for the ones written before fastify sees the request. */
function corsHeaders(origin: string): string {
  return (
    `Access-Control-Allow-Origin: ${origin}\r\nAccess-Control-Allow-Methods: ${CORS_METHODS}\r\n` +
    `Access-Control-Allow-Headers: ${CORS_HEADERS}\r\nAccess-Control-Expose-Headers: ${CORS_EXPOSE}\r\n`
  );
}

/**
 * What Node's HTTP parser refuses (a broken request line, headers over the limit, a header
 * timeout) never reaches fastify: answer it in the API's error shape (docs/api.md, "Errors"), with CORS, and let it use up the
 * sender's rate-limit bucket like any request.
 */
function clientErrorHandler(rateLimit: RateLimit, origin: string, log: Logger) {
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
    log.info({ ip, code: err.code, status }, "malformed request");
    rateLimit.take(ip).then(
      (retryAfter) =>
        retryAfter === undefined ? answer(status, reason, message) : answer(429, "Too Many Requests", "too many requests", `Retry-After: ${retryAfter}\r\n`),
      () => answer(status, reason, message),
    );
  };
}

export interface AppOptions {
  /** Called with the bare instance, before any hook, plugin or route (tests add hooks that must see every route). */
  instrument?: (app: FastifyInstance) => void;
}

/**
 * The HTTP face of a Server: plugins, hooks and routes, nothing else. `app.close()` stops taking
 * requests and then closes the Server (every room ends, recordings are finalised).
 */
export async function buildApp(server: Server, options: AppOptions = {}): Promise<FastifyInstance> {
  const { config } = server;
  // The app logs through the server's pino instance, typed as fastify's logger.
  const log: FastifyBaseLogger = server.log;
  const rateLimit = createRateLimit(config.rateLimitRps, config.rateLimitBurst, server.cluster?.redisClient);
  const app = Fastify({
    clientErrorHandler: clientErrorHandler(rateLimit, config.allowedOrigin, log),
    loggerInstance: log,
    bodyLimit: BODY_LIMIT,
    trustProxy: config.trustProxy,
    // One line per request, written on response (below), instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Every path parameter reaches its route, which gives its own 400 (a room name of 101+
    // characters is "invalid room name", not fastify's 414); Node's header limit bounds the URL.
    routerOptions: { maxParamLength: 16 * 1024 },
    ajv: AJV_OPTIONS,
    // A broken %-escape in the path: 400 in the API's error shape (fastify's own echoes the path).
    frameworkErrors: (err, _request, reply) => {
      const [status, error] = err.code === "FST_ERR_ASYNC_CONSTRAINT" ? [500, "internal server error"] : [400, "invalid URL"];
      (reply as unknown as FastifyReply).code(status).type("application/json; charset=utf-8").send({ error });
    },
  });
  options.instrument?.(app);
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
  app.addHook("onClose", async () => server.close());

  await registerOpenApi(app);
  await app.register(cors, {
    origin: config.allowedOrigin === "*" ? "*" : config.allowedOrigin,
    methods: CORS_METHODS.split(", "),
    allowedHeaders: CORS_HEADERS.split(", "),
    exposedHeaders: CORS_EXPOSE.split(", "),
    strictPreflight: false,
    optionsSuccessStatus: 204,
  });
  // The API wants the methods and headers on every response, not only on preflights.
  app.addHook("onSend", async (request, reply, payload) => {
    if (!reply.hasHeader("Access-Control-Allow-Methods")) reply.header("Access-Control-Allow-Methods", CORS_METHODS);
    if (!reply.hasHeader("Access-Control-Allow-Headers")) reply.header("Access-Control-Allow-Headers", CORS_HEADERS);
    if (request.method === "OPTIONS" && /^\/api\/wh(ip|ep)\/(publish|play)\//.test(request.url)) {
      reply.header("Accept-Post", "application/sdp");
    }
    return payload;
  });

  // Other nodes' requests are known before the rate limit, which does not count them again.
  if (server.cluster) registerClusterPeers(app, server.cluster.secret);
  app.addHook("onRequest", async (request, reply) => {
    const url = request.url;
    if (url.startsWith("/api/") || url.startsWith("/records/") || url.startsWith(DOCS_PREFIX)) await rateLimit.hook(request, reply);
  });
  if (server.cluster) {
    registerClusterRoutes(app, { cluster: server.cluster, auth: server.auth, maxSubsPerRoom: config.maxSubsPerRoom, drainSeconds: config.drainSeconds });
  }

  const { auth, rooms } = server;
  registerErrorHandling(app);
  await registerOpenApiRoutes(app);
  registerStatusRoutes(app, { config, rooms, auth, metrics: server.metrics, cluster: server.cluster });
  const cluster = server.cluster;
  await app.register(sessionRoutes, {
    rooms,
    auth,
    iceServers: config.iceServers,
    hooks: server.hooks,
    ice: config,
    sessionId: cluster ? () => cluster.sessionId() : undefined,
  });
  await app.register(playerStatsRoutes, { rooms, auth, players: server.players });
  registerEventRoutes(app, { rooms, auth });

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
  registerRecordRoutes(app, { auth, recordDir: config.recordDir, remote: cluster ? remoteRecords(cluster) : undefined });
  const jobs = cluster ? jobRouting(cluster) : undefined;
  await registerBridgeRoutes(app, { auth, bridges: server.bridges, config, jobs });
  registerIngestRoutes(app, { auth, ingests: server.ingests });
  await registerCallbackRoutes(app, { receiver: server.callbacks, log });
  await registerRelayRoutes(app, { relays: server.relays, config, jobs });
  return app;
}
