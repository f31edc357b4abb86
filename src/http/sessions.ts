import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Authorizer } from "../auth/auth.js";
import type { IceServerConfig } from "../config.js";
import type { SourceRole } from "../sfu/continuity.js";
import type { Rooms, SessionKind } from "../sfu/rooms.js";
import type { IceSettings } from "../sfu/peer.js";
import { iceFragmentOf, parseSdpFrag, type SdpFragment } from "../sfu/sdpfrag.js";
import { newSessionId } from "../sfu/session.js";
import type { HookClient, SessionHooks } from "../hooks/callbacks.js";
import { sendError } from "./errors.js";
import { eventsLink } from "./events.js";
import { admitRoom, isClusterPeer, tokenOf, unauthorized } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

export interface SessionRouteDeps {
  rooms: Rooms;
  auth: Authorizer;
  iceServers: IceServerConfig[];
  hooks: SessionHooks;
  ice: IceSettings;
  /** Session ids that name their node (a cluster); random ids otherwise. */
  sessionId?: () => string;
}

/** RFC 9725 §4.6: ICE servers as Link headers, TURN credentials included. */
export function iceLinks(servers: IceServerConfig[]): string[] {
  const links: string[] = [];
  for (const s of servers) {
    for (const url of s.urls) {
      let link = `<${url}>; rel="ice-server"`;
      if (s.username !== undefined) link += `; username="${s.username.replace(/"/g, "")}"`;
      if (s.credential !== undefined) link += `; credential="${s.credential.replace(/"/g, "")}"; credential-type="password"`;
      links.push(link);
    }
  }
  return links;
}

function isSdp(request: FastifyRequest): boolean {
  const type = request.headers["content-type"];
  return typeof type === "string" && type.split(";")[0].trim().toLowerCase() === "application/sdp";
}

const ALLOWED = "POST, OPTIONS";
const SESSION_ALLOWED = "DELETE, PATCH, OPTIONS";

/** WHIP/WHEP endpoints and session resources, in their own context so their body parsing stays theirs. */
export async function sessionRoutes(app: FastifyInstance, deps: SessionRouteDeps): Promise<void> {
  const { rooms, auth } = deps;
  const links = iceLinks(deps.iceServers);

  // WHIP/WHEP bodies are SDP; every type is read as text (bounded by bodyLimit) so the route
  // answers 415 itself, after the room and auth checks, instead of a JSON parse error.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => done(null, body));

  /** POST of an offer: a WHIP publisher (a room's primary, or its backup) or a WHEP viewer. */
  const create = (kind: SessionKind, path: string, role: SourceRole = "primary"): void => {
    const action = kind === "whip" ? "publish" : "subscribe";
    const schemas = SCHEMAS[kind];
    // The route's own checks answer, in the order docs/api.md gives; the body schema only documents.
    const schema = role === "backup" ? SCHEMAS.whipBackup : schemas.post;
    app.post<{ Params: { room: string } }>(path, { schema, attachValidation: true }, async (request, reply) => {
      const { room } = request.params;
      if (!admitRoom(auth, request, reply, room, action)) return reply;
      if (!isSdp(request)) return sendError(reply, 415, "unsupported media type");
      const body = typeof request.body === "string" ? request.body : "";
      const query = request.url.indexOf("?");
      const client: HookClient = {
        clientId: deps.sessionId?.() ?? newSessionId(),
        ip: request.ip,
        room,
        param: query < 0 ? "" : request.url.slice(query),
        tcUrl: `${request.protocol}://${request.host}${query < 0 ? request.url : request.url.slice(0, query)}`,
        protocol: kind,
      };
      // Callbacks decide before any peer exists (docs/hooks.md, "Outgoing callbacks"); a slow one delays only this request.
      // Another node's pull is no viewer of its own: its viewers' callbacks ran on that node.
      const peer = isClusterPeer(request);
      const decision = peer ? { allowed: true } : await deps.hooks.decide(client);
      if (!decision.allowed) return sendError(reply, 403, "rejected by hook");
      let created: Awaited<ReturnType<typeof rooms.publish>> | Awaited<ReturnType<typeof rooms.subscribe>>;
      try {
        created = kind === "whip" ? await rooms.publish(room, body, client.clientId, role) : await rooms.subscribe(room, body, client.clientId);
      } catch (err) {
        if (!peer) deps.hooks.failed(client);
        throw err;
      }
      const { session, answer } = created;
      if (!peer) deps.hooks.started(client);
      reply.code(201);
      reply.header("Content-Type", "application/sdp");
      reply.header("Location", `/api/${kind}/session/${session.id}`);
      reply.header("ETag", session.etag);
      const sessionLinks = kind === "whep" ? [...links, eventsLink(session.id)] : links;
      if (sessionLinks.length > 0) reply.header("Link", sessionLinks);
      return reply.send(answer);
    });
    app.options(path, { schema: schemas.options }, async (_request, reply) => {
      reply.header("Accept-Post", "application/sdp");
      if (links.length > 0) reply.header("Link", links);
      return reply.code(204).send();
    });
  };

  const endpoint = (kind: SessionKind, path: string): void => {
    const action = kind === "whip" ? "publish" : "subscribe";
    const schemas = SCHEMAS[kind];
    create(kind, path);
    app.route({
      method: ["GET", "PUT", "PATCH", "DELETE", "HEAD"],
      url: path,
      schema: schemas.notAllowed,
      handler: async (_request, reply) => {
        reply.header("Allow", ALLOWED);
        return sendError(reply, 405, "method not allowed");
      },
    });

    const sessionPath = `/api/${kind}/session/:id`;
    const authorizeSession = (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      const entry = rooms.session(kind, request.params.id);
      if (!entry) {
        sendError(reply, 404, "session not found");
        return undefined;
      }
      // The session id is the capability (RFC 9725 §4.3); a token, when auth is on, must still fit the room.
      if (auth.enabled && !auth.allows(tokenOf(request), entry.room.name, action)) {
        unauthorized(reply);
        return undefined;
      }
      return entry;
    };
    app.delete<{ Params: { id: string } }>(sessionPath, { schema: schemas.sessionDelete }, async (request, reply) => {
      const entry = authorizeSession(request, reply);
      if (!entry) return reply;
      await rooms.endSession(kind, request.params.id);
      return reply.code(200).send();
    });
    app.patch<{ Params: { id: string } }>(sessionPath, { schema: schemas.sessionPatch, attachValidation: true }, async (request, reply) => {
      const entry = authorizeSession(request, reply);
      if (!entry) return reply;
      const type = request.headers["content-type"]?.split(";")[0].trim().toLowerCase();
      if (type !== "application/trickle-ice-sdpfrag") return sendError(reply, 415, "unsupported media type");
      const session = entry.session;
      const ifMatch = request.headers["if-match"];
      // RFC 9725 §4.4: every PATCH names the ICE session it applies to.
      if (ifMatch === undefined) return sendError(reply, 428, "If-Match required");
      let frag: SdpFragment;
      try {
        frag = parseSdpFrag(typeof request.body === "string" ? request.body : "");
      } catch {
        return sendError(reply, 400, "invalid SDP fragment");
      }
      const restart = frag.ufrag !== undefined && frag.ufrag !== session.remoteUfrag;
      if (restart) {
        if (ifMatch !== "*" && ifMatch !== session.etag) return sendError(reply, 412, "precondition failed");
        const answer = await session.restartIce(frag, deps.ice);
        reply.header("ETag", session.etag);
        return reply.code(200).type("application/trickle-ice-sdpfrag").send(iceFragmentOf(answer));
      }
      if (ifMatch !== "*" && ifMatch !== session.etag) return sendError(reply, 412, "precondition failed");
      await session.addCandidates(frag);
      return reply.code(204).send();
    });
    app.options(sessionPath, { schema: schemas.sessionOptions }, async (_request, reply) => {
      reply.header("Accept-Patch", "application/trickle-ice-sdpfrag");
      return reply.code(204).send();
    });
    app.route({
      method: ["GET", "PUT", "POST", "HEAD"],
      url: sessionPath,
      schema: schemas.sessionNotAllowed,
      handler: async (_request, reply) => {
        reply.header("Allow", SESSION_ALLOWED);
        return sendError(reply, 405, "method not allowed");
      },
    });
  };

  endpoint("whip", "/api/whip/publish/:room");
  // A room's hot standby (docs/api.md, "Hot standby"): kept warm, forwarded when the primary fails.
  create("whip", "/api/whip/publish/:room/backup", "backup");
  endpoint("whep", "/api/whep/play/:room");
}
