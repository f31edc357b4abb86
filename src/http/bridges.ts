// Routes of the FFmpeg bridges (docs/bridges.md): room HLS and RTMP restreams under
// /api/rooms/{room}, the HLS files under /hls/{name}/, and the transcoding API (/start-stream,
// /stop-stream, /streams) with its own JSON shapes and X-API-Key ("/start-stream jobs").

import { lstat } from "node:fs/promises";
import path from "node:path";
import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import { tokenMatches, type Authorizer } from "../auth/auth.js";
import type { Bridges } from "../bridges/index.js";
import { parseRtmpUrl } from "../bridges/urls.js";
import type { Config } from "../config.js";
import { isDomainError } from "../errors.js";
import type { StreamInfo } from "../bridges/streams.js";
import type { StreamJobSpec } from "../cluster/jobs.js";
import type { JobRouting } from "./cluster.js";
import { RETRY_AFTER_SECONDS, sendDomainError, sendError } from "./errors.js";
import { admitRoomManager, tokenOf, unauthorized } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The FFmpeg bridges (supervisor, room HLS/restreams, /start-stream jobs). */
    bridges: Bridges;
  }
}

export interface BridgeRouteDeps {
  auth: Authorizer;
  bridges: Bridges;
  config: Pick<Config, "transcoderApiKey">;
  /** A cluster's /start-stream jobs: run by one node each, reached from any (src/http/cluster.ts). */
  jobs?: JobRouting;
}

function bridgeError(reply: FastifyReply, err: unknown): FastifyReply {
  if (isDomainError(err)) return sendDomainError(reply, err);
  throw err;
}

const CONTENT_TYPES: Record<string, string> = {
  ".m3u8": "application/vnd.apple.mpegurl",
  ".ts": "video/mp2t",
};

export async function registerBridgeRoutes(app: FastifyInstance, deps: BridgeRouteDeps): Promise<void> {
  const { auth, bridges, jobs } = deps;
  const roomBridges = bridges.rooms;
  app.decorate("bridges", bridges);

  // ---- room HLS ---------------------------------------------------------------------------------

  app.post<{ Params: { room: string } }>("/api/rooms/:room/hls", { schema: SCHEMAS.hlsStart }, async (request, reply) => {
    const { room } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    try {
      const { created, info } = roomBridges.startHls(room);
      return reply.code(created ? 201 : 200).send(info);
    } catch (err) {
      return bridgeError(reply, err);
    }
  });

  app.get<{ Params: { room: string } }>("/api/rooms/:room/hls", { schema: SCHEMAS.hlsInfo }, async (request, reply) => {
    const { room } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    const info = roomBridges.hlsInfo(room);
    if (!info) return sendError(reply, 404, "hls not running");
    return info;
  });

  app.delete<{ Params: { room: string } }>("/api/rooms/:room/hls", { schema: SCHEMAS.hlsStop }, async (request, reply) => {
    const { room } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    if (!(await roomBridges.stopHls(room))) return sendError(reply, 404, "hls not running");
    return { stopped: room };
  });

  // ---- RTMP restreams ---------------------------------------------------------------------------

  app.post<{ Params: { room: string }; Body: unknown }>(
    "/api/rooms/:room/restreams",
    { schema: SCHEMAS.restreamAdd, attachValidation: true },
    async (request, reply) => {
      const { room } = request.params;
      if (!admitRoomManager(auth, request, reply, room)) return reply;
      const body = request.body as { url?: unknown } | undefined;
      const url = parseRtmpUrl(body?.url);
      if (url === undefined) return sendError(reply, 400, "invalid restream url: only rtmp:// and rtmps:// URLs are accepted");
      try {
        const info = roomBridges.addRestream(room, url);
        return reply.code(201).send(info);
      } catch (err) {
        return bridgeError(reply, err);
      }
    },
  );

  app.get<{ Params: { room: string } }>("/api/rooms/:room/restreams", { schema: SCHEMAS.restreamList }, async (request, reply) => {
    const { room } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    try {
      return roomBridges.listRestreams(room);
    } catch (err) {
      return bridgeError(reply, err);
    }
  });

  app.delete<{ Params: { room: string; id: string } }>("/api/rooms/:room/restreams/:id", { schema: SCHEMAS.restreamStop }, async (request, reply) => {
    const { room, id } = request.params;
    if (!admitRoomManager(auth, request, reply, room)) return reply;
    if (!/^[0-9a-f]{16}$/.test(id) || !(await roomBridges.removeRestream(room, id))) return sendError(reply, 404, "restream not found");
    return { stopped: id };
  });

  // ---- HLS files --------------------------------------------------------------------------------

  app.get<{ Params: { name: string; file: string } }>("/hls/:name/:file", { schema: SCHEMAS.hlsFile, attachValidation: true }, async (request, reply) => {
    const { name, file } = request.params;
    // Only HLS_DIR/{room name}/{stream.m3u8|seg_<n>.ts}: no separators, dot segments or absolute paths.
    const full = bridges.hls.fileFor(name, file);
    if (full === undefined) return sendError(reply, 400, "invalid HLS path");
    if (auth.enabled && !auth.allowsRead(tokenOf(request, true), name)) return unauthorized(reply);
    try {
      const st = await lstat(full);
      if (!st.isFile()) return sendError(reply, 404, "not found");
    } catch {
      // A /start-stream job another node runs: its files are there.
      if (jobs && (await jobs.route(request, reply, "stream", [name])) === "forwarded") return reply;
      return sendError(reply, 404, "not found");
    }
    const ext = path.extname(file);
    reply.header("Content-Type", CONTENT_TYPES[ext] ?? "application/octet-stream");
    // The playlist changes every segment; a segment's name is never reused (numbered by start time).
    reply.header("Cache-Control", ext === ".m3u8" ? "no-cache" : "public, max-age=31536000, immutable");
    return reply.sendFile(file, path.dirname(full), { dotfiles: "deny", cacheControl: false, acceptRanges: true });
  });
  app.get("/hls/*", { schema: SCHEMAS.hlsDeeper }, async (_request, reply) => sendError(reply, 400, "invalid HLS path"));

  // ---- the transcoding API ----------------------------------------------------------------------

  await app.register(async (scope) => {
    const transcoderError = (reply: FastifyReply, status: number, message: string): FastifyReply =>
      reply.code(status).type("application/json; charset=utf-8").send({ status: "error", message });
    const INVALID_START = "Invalid request body: streamId and rtmpUrl are required.";
    const INVALID_STOP = "Invalid request body: streamId is required.";

    // The key is checked before the body is read: a wrong key never learns whether its body was valid.
    scope.addHook("onRequest", async (request, reply) => {
      const key = deps.config.transcoderApiKey;
      const given = request.headers["x-api-key"];
      if (key === undefined || typeof given !== "string" || !tokenMatches(given, key)) {
        await transcoderError(reply, 403, "Forbidden");
      }
    });

    scope.setErrorHandler((err: FastifyError, request, reply) => {
      const status = err.statusCode ?? 500;
      if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") return transcoderError(reply, 413, "Request body too large.");
      if (status >= 400 && status < 500) {
        return transcoderError(reply, 400, request.url.startsWith("/stop-stream") ? INVALID_STOP : INVALID_START);
      }
      request.log.error({ err }, "request failed");
      return transcoderError(reply, 500, "Internal server error.");
    });

    // The schemas check the bodies (a refusal is this scope's 400 above); the URL check is the route's.
    scope.post<{ Body: { streamId: string; rtmpUrl: string } }>("/start-stream", { schema: SCHEMAS.startStream }, async (request, reply) => {
      const { streamId } = request.body;
      const rtmpUrl = parseRtmpUrl(request.body.rtmpUrl);
      if (rtmpUrl === undefined) return transcoderError(reply, 400, INVALID_START);
      if (jobs && (await jobs.route(request, reply, "stream", [streamId])) !== "here") return reply;
      try {
        await jobs?.jobs.take("stream", streamId);
        await bridges.streams.start(streamId, rtmpUrl);
      } catch (err) {
        // Nothing runs: no node is to take it up either.
        if (jobs?.jobs.holds("stream", streamId)) await jobs.jobs.remove("stream", streamId).catch(() => undefined);
        // This API's statuses: 409 for a name a room's HLS holds, 503 at the job limit, 500 for
        // every other failure to start, with its reason.
        if (isDomainError(err, "conflict")) return transcoderError(reply, 409, `Stream ${streamId} cannot start: ${err.message}.`);
        if (isDomainError(err, "capacity")) {
          reply.header("Retry-After", RETRY_AFTER_SECONDS);
          return transcoderError(reply, 503, `Failed to start FFmpeg process for stream ${streamId}. Reason: ${err.message}.`);
        }
        const reason = isDomainError(err) ? err.message : "internal error";
        if (!isDomainError(err)) request.log.error({ err, streamId }, "start-stream failed");
        const sentence = /[.!?]$/.test(reason) ? reason : `${reason}.`;
        return transcoderError(reply, 500, `Failed to start FFmpeg process for stream ${streamId}. Reason: ${sentence}`);
      }
      const spec: StreamJobSpec = { rtmpUrl };
      await jobs?.jobs
        .put("stream", streamId, JSON.stringify(spec))
        .catch((err: Error) => request.log.warn({ streamId, err: err.message }, "stream job not stored"));
      return { status: "success", message: `Stream ${streamId} started.` };
    });

    scope.post<{ Body: { streamId: string } }>("/stop-stream", { schema: SCHEMAS.stopStream }, async (request, reply) => {
      const { streamId } = request.body;
      if (jobs && (await jobs.route(request, reply, "stream", [streamId])) !== "here") return reply;
      let stopped = await bridges.streams.stop(streamId);
      // Also a job whose node died and that nobody took up yet.
      if (jobs) stopped = (await jobs.jobs.remove("stream", streamId).catch(() => false)) || stopped;
      if (!stopped) return transcoderError(reply, 404, `Stream ${streamId} not found.`);
      return { status: "success", message: `Stream ${streamId} stopped.` };
    });

    scope.get("/streams", { schema: SCHEMAS.streams }, async (request) => {
      if (!jobs) return { status: "success", streams: bridges.streams.list() };
      const here = bridges.streams.list().map((s) => ({ ...s, node: jobs.nodeId }));
      const there = (await jobs.fromOthers(request)).flatMap((a) => (a as { streams?: StreamInfo[] }).streams ?? []);
      return { status: "success", streams: [...here, ...there] };
    });
  });
}
