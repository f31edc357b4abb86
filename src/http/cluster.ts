// The cluster's HTTP face: node-to-node requests proven by CLUSTER_SECRET, session requests that
// landed on the wrong node sent on to the node their id names, new sessions of a draining node
// sent elsewhere, MAX_SUBS_PER_ROOM over every node, and POST /api/admin/drain. Registered only
// when REDIS_URL is set (docs/api.md, "Cluster").
import { timingSafeEqual } from "node:crypto";
import { Readable } from "node:stream";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Authorizer } from "../auth/auth.js";
import { NODE_HEADER, SECRET_HEADER } from "../cluster/edge-source.js";
import { ClusterNode } from "../cluster/node.js";
import { errors } from "../sfu/errors.js";
import { sendDomainError, sendError } from "./errors.js";
import { SCHEMAS } from "./schemas.js";
import { admitRoom, isClusterPeer, markClusterPeer, tokenOf, unauthorized } from "./guard.js";
import type { RecordEntry, RemoteRecords } from "./records.js";
import type { ClusterJobs, JobKind } from "../cluster/jobs.js";

export interface ClusterRouteDeps {
  cluster: ClusterNode;
  auth: Authorizer;
  maxSubsPerRoom: number;
  /** How long POST /api/admin/drain drains for (DRAIN_SECONDS, at least 30 s when unset). */
  drainSeconds: number;
}

const SESSION_RE = /^\/api\/(whip|whep)\/session\/([^/?#]+)/;
const WHIP_ROUTE = "/api/whip/publish/:room";
const WHEP_ROUTE = "/api/whep/play/:room";
/** Headers a forwarded request carries on, and the ones its answer brings back. */
const REQUEST_HEADERS = ["content-type", "if-match", "authorization", "x-auth-token", "accept", "x-api-key"];
const ANSWER_HEADERS = ["content-type", "etag", "location", "link", "retry-after", "www-authenticate", "accept-patch", "allow", "cache-control"];
const FORWARD_TIMEOUT_MS = 10_000;

function secretMatches(given: string, secret: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(request: FastifyRequest): Promise<Buffer | undefined> {
  if (request.method === "GET" || request.method === "HEAD") return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request.raw) {
    size += (chunk as Buffer).length;
    if (size > 1024 * 1024) throw new Error("request body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Sends the request on to another node and relays its answer (sent on `reply`); 502 when that node cannot be reached. */
export async function forwardRequest(request: FastifyRequest, reply: FastifyReply, base: string, secret: string, nodeId: string, body?: Buffer): Promise<void> {
  const headers: Record<string, string> = { [SECRET_HEADER]: secret, [NODE_HEADER]: nodeId };
  for (const h of REQUEST_HEADERS) {
    const v = request.headers[h];
    if (typeof v === "string") headers[h] = v;
  }
  let res: Response;
  try {
    res = await fetch(`${base}${request.url}`, {
      method: request.method,
      headers,
      body: body && body.length > 0 ? new Uint8Array(body) : undefined,
      redirect: "manual",
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    });
  } catch {
    sendError(reply, 502, "node unreachable");
    return;
  }
  const answer = Buffer.from(await res.arrayBuffer());
  for (const h of ANSWER_HEADERS) {
    const v = res.headers.get(h);
    if (v) reply.header(h, v);
  }
  reply.code(res.status).send(answer.length > 0 ? answer : undefined);
}

/**
 * Marks requests from other nodes (CLUSTER_SECRET); a wrong secret is 401. Registered before the
 * rate limit, which counts a forwarded request on the node the client reached, not again here.
 */
export function registerClusterPeers(app: FastifyInstance, secret: string): void {
  app.addHook("onRequest", async (request, reply) => {
    const given = request.headers[SECRET_HEADER];
    if (given === undefined) return;
    if (typeof given !== "string" || !secretMatches(given, secret)) return unauthorized(reply);
    markClusterPeer(request);
  });
}

/** The cluster's hooks and routes; after the rate limit, so forwarded requests are counted here. */
export function registerClusterRoutes(app: FastifyInstance, deps: ClusterRouteDeps): void {
  const { cluster, auth } = deps;

  app.addHook("onRequest", async (request, reply) => {
    if (reply.sent) return; // answered by the rate limit
    const session = SESSION_RE.exec(request.url);
    if (!session || (request.method !== "PATCH" && request.method !== "DELETE")) return;
    const node = ClusterNode.nodeOfSession(decodeURIComponent(session[2]!));
    if (node === undefined || node === cluster.id) return;
    const url = await cluster.nodeUrl(node);
    // Its node is gone, and the session with it: the local route answers 404.
    if (url === undefined) return;
    let body: Buffer | undefined;
    try {
      body = await readBody(request);
    } catch {
      return sendError(reply, 413, "request body too large");
    }
    await forwardRequest(request, reply, url, cluster.secret, cluster.id, body);
    return reply;
  });

  app.addHook("preHandler", async (request: FastifyRequest, reply) => {
    const route = request.routeOptions.url;
    if (request.method !== "POST" || (route !== WHIP_ROUTE && route !== WHEP_ROUTE) || isClusterPeer(request)) return;
    const room = (request.params as { room: string }).room;
    if (!admitRoom(auth, request, reply, room, route === WHIP_ROUTE ? "publish" : "subscribe")) return reply;
    if (cluster.draining) {
      const target = await cluster.takeover();
      if (target === undefined) return sendError(reply, 503, "node is draining");
      return reply.code(307).header("Location", `${target}${request.url}`).send();
    }
    if (route === WHEP_ROUTE && deps.maxSubsPerRoom > 0 && (await cluster.totalViewers(room)) >= deps.maxSubsPerRoom) {
      return sendDomainError(reply, errors.subscriberLimit());
    }
  });

  // A pull by another node: its session is an edge, not a viewer.
  app.addHook("onSend", async (request, reply, payload) => {
    if (reply.statusCode !== 201 || !isClusterPeer(request) || request.routeOptions.url !== WHEP_ROUTE) return payload;
    const location = reply.getHeader("location");
    const node = request.headers[NODE_HEADER];
    if (typeof location === "string" && typeof node === "string") {
      cluster.edgeSession(decodeURIComponent(location.slice(location.lastIndexOf("/") + 1)), (request.params as { room: string }).room, node);
    }
    return payload;
  });

  app.post("/api/admin/drain", { schema: SCHEMAS.drain }, async (request, reply) => {
    if (!auth.allowsAdmin(tokenOf(request))) return unauthorized(reply);
    const seconds = deps.drainSeconds > 0 ? deps.drainSeconds : 30;
    if (!cluster.draining) void cluster.drain(seconds * 1000);
    return reply.code(202).send({ draining: cluster.id, seconds });
  });
}

/** GET /api/rooms of a cluster: every room with its owner and viewers per node. */
export async function clusterRooms(cluster: ClusterNode): Promise<unknown> {
  return cluster.listRooms();
}

/**
 * POST /api/admin/rooms/{room}/close on a node that does not own the room: sent to its owner
 * (whose close ends every edge's copy). False when the room is this node's to close.
 */
export async function closeRoomElsewhere(cluster: ClusterNode, request: FastifyRequest, reply: FastifyReply, room: string): Promise<boolean> {
  if (cluster.owns(room) || isClusterPeer(request)) return false;
  const url = await cluster.ownerUrl(room);
  if (url === undefined) return false;
  await forwardRequest(request, reply, url, cluster.secret, cluster.id);
  return true;
}

/** Recordings of the other live nodes, for /api/records and /records/{name} on any node. */
export function remoteRecords(cluster: ClusterNode): RemoteRecords {
  const others = async (): Promise<string[]> => ((await cluster.nodes()) ?? []).filter((n) => n.id !== cluster.id).map((n) => n.url);
  const headersOf = (request: FastifyRequest, extra: string[] = []): Record<string, string> => {
    const headers: Record<string, string> = { [SECRET_HEADER]: cluster.secret, [NODE_HEADER]: cluster.id };
    for (const h of ["authorization", "x-auth-token", ...extra]) {
      const v = request.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    return headers;
  };
  return {
    async list(request) {
      const lists = await Promise.all(
        (await others()).map(async (url) => {
          try {
            const res = await fetch(`${url}/api/records`, { headers: headersOf(request), signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS) });
            return res.ok ? ((await res.json()) as RecordEntry[]) : [];
          } catch {
            return [];
          }
        }),
      );
      return lists.flat();
    },
    async serve(request, reply, name) {
      const query = request.url.indexOf("?");
      for (const url of await others()) {
        let res: Response;
        try {
          res = await fetch(`${url}/records/${encodeURIComponent(name)}${query < 0 ? "" : request.url.slice(query)}`, {
            headers: headersOf(request, ["range", "if-none-match", "if-modified-since"]),
            signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
          });
        } catch {
          continue;
        }
        if (res.status === 404) {
          await res.body?.cancel();
          continue;
        }
        for (const h of ["content-type", "content-length", "content-range", "accept-ranges", "last-modified", "etag"]) {
          const v = res.headers.get(h);
          if (v) reply.header(h, v);
        }
        reply.code(res.status);
        if (res.body) reply.send(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>));
        else reply.send();
        return true;
      }
      return false;
    },
  };
}

/**
 * /start-stream jobs and relay tasks in a cluster (docs/api.md, "Cluster"): a request about a job
 * another node runs is sent on to that node; one run here takes the job's lease (ClusterJobs);
 * lists gather every node's.
 */
export interface JobRouting {
  readonly nodeId: string;
  readonly jobs: ClusterJobs;
  /**
   * Where a client's request about these jobs goes: "here" (nobody else runs them), "forwarded"
   * (sent on to the one live node that runs them, and answered), "split" (they run on several nodes).
   */
  route(request: FastifyRequest, reply: FastifyReply, kind: JobKind, ids: string[]): Promise<"here" | "forwarded" | "split">;
  /** A client's GET asked of every other live node too: their JSON answers (those that failed left out). */
  fromOthers(request: FastifyRequest): Promise<unknown[]>;
}

export function jobRouting(cluster: ClusterNode): JobRouting {
  const others = async (): Promise<string[]> => ((await cluster.nodes()) ?? []).filter((n) => n.id !== cluster.id).map((n) => n.url);
  return {
    nodeId: cluster.id,
    jobs: cluster.jobs,
    async route(request, reply, kind, ids) {
      if (isClusterPeer(request)) return "here";
      // Per job, the live node running it when that is another one; a job whose node died is
      // taken up here (or by the next scan of any node).
      const urls = await Promise.all(
        ids.map(async (id) => {
          const owner = await cluster.jobs.owner(kind, id).catch(() => undefined);
          return owner === undefined || owner === cluster.id ? undefined : await cluster.nodeUrl(owner);
        }),
      );
      if (new Set(urls).size > 1) return "split";
      if (urls[0] === undefined) return "here";
      const body = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body));
      await forwardRequest(request, reply, urls[0]!, cluster.secret, cluster.id, body);
      return "forwarded";
    },
    async fromOthers(request) {
      if (isClusterPeer(request)) return [];
      const headers: Record<string, string> = { [SECRET_HEADER]: cluster.secret, [NODE_HEADER]: cluster.id };
      for (const h of REQUEST_HEADERS) {
        const v = request.headers[h];
        if (typeof v === "string") headers[h] = v;
      }
      const answers = await Promise.all(
        (await others()).map(async (url) => {
          try {
            const res = await fetch(`${url}${request.url}`, { headers, signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS) });
            return res.ok ? [(await res.json()) as unknown] : [];
          } catch {
            return [];
          }
        }),
      );
      return answers.flat();
    },
  };
}
