import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { tokenMatches, type Authorizer } from "../auth/auth.js";
import type { Config } from "../config.js";
import type { ClusterNode } from "../cluster/node.js";
import type { Rooms } from "../sfu/rooms.js";
import { closeRoomElsewhere } from "./cluster.js";
import { sendError } from "./errors.js";
import { tokenOf, unauthorized } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

export interface StatusRouteDeps {
  config: Config;
  rooms: Rooms;
  auth: Authorizer;
  metrics: Registry;
  /** With a cluster: /api/rooms lists every node's rooms, admin close reaches the owner, /healthz says degraded without Redis. */
  cluster?: ClusterNode;
}

export function registerStatusRoutes(app: FastifyInstance, deps: StatusRouteDeps): void {
  const { config, rooms, auth, metrics, cluster } = deps;

  // Still 200 when degraded: the node serves its rooms (liveness), only the cluster view is missing.
  app.get("/healthz", { schema: SCHEMAS.healthz }, async (_request, reply) => reply.type("text/plain; charset=utf-8").send(cluster?.health ?? "ok"));

  app.get("/metrics", { schema: SCHEMAS.metrics }, async (request, reply) => {
    if (config.metricsToken !== undefined && !tokenMatches(tokenOf(request), config.metricsToken)) return unauthorized(reply);
    const body = await metrics.metrics();
    return reply.type(metrics.contentType).send(body);
  });

  app.get("/api/bootstrap", { schema: SCHEMAS.bootstrap }, async () => ({
    authEnabled: auth.enabled,
    recordEnabled: config.recordEnabled,
    iceServers: config.iceServers,
    // Keys are only ever added (docs/api.md, "Server status"): clients can test for what this server offers.
    features: { rooms: true, records: true, hls: true, rtmp: true, hlsForEveryRoom: config.hlsEnabled },
  }));

  app.get("/api/rooms", { schema: SCHEMAS.rooms }, async () => (cluster ? cluster.listRooms() : rooms.list()));

  app.post<{ Params: { room: string } }>("/api/admin/rooms/:room/close", { schema: SCHEMAS.closeRoom }, async (request, reply) => {
    const { room } = request.params;
    // A JWT with admin rights for this one room may close it; ADMIN_TOKEN closes any.
    if (!auth.allowsAdmin(tokenOf(request), room)) return unauthorized(reply);
    if (cluster && (await closeRoomElsewhere(cluster, request, reply, room))) return reply;
    const closed = await rooms.closeRoom(room, "admin-close");
    if (!closed) return sendError(reply, 404, "room not found");
    request.log.info({ room }, "room closed by admin");
    return { closed: room };
  });
}
