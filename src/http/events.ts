// WHEP server-sent events (the urn:ietf:params:whep:ext:core:server-sent-events extension of the
// WHEP draft; docs/api.md, "WHEP events"). The 201 of a WHEP POST links the session's entry point;
// a POST there (optionally naming the events wanted) makes an event stream, whose URL is then
// long-pulled as text/event-stream. Each event is one `event:` line and one `data:` line of JSON.
// Events wait in the stream's queue while no pull is open. Streams are authorised like their
// session and end with it; DELETE ends one, and a pull of an ended stream is answered 404.

import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Authorizer } from "../auth/auth.js";
import { ROOM_EVENT_TYPES, type RoomEvent, type RoomEventType } from "../sfu/events.js";
import { continuityOf, type Rooms, type SessionEntry } from "../sfu/rooms.js";
import type { LayerState } from "../sfu/simulcast.js";
import { Subscriber } from "../sfu/subscriber.js";
import { sendError } from "./errors.js";
import { tokenOf, unauthorized } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

export const EVENTS_REL = "urn:ietf:params:whep:ext:core:server-sent-events";

/** The Link header value a WHEP 201 carries for its session's event entry point. */
export function eventsLink(sessionId: string): string {
  return `</api/whep/session/${sessionId}/sse>; rel="${EVENTS_REL}"; events="${ROOM_EVENT_TYPES.join(",")}"`;
}

/** Events kept for a stream while no pull is open; the oldest go first. */
const QUEUE_LIMIT = 100;
/** A comment line this often keeps proxies from closing an idle pull. */
const KEEPALIVE_MS = 15_000;
/** How often a simulcast room's layers are looked at for a change worth a `layers` event. */
const LAYERS_MS = 1000;

/** One SSE message in the draft's shape: the event's name, its data as one line of JSON. */
export function formatEvent(id: number, event: RoomEvent, mline = 0): string {
  let data: object;
  switch (event.type) {
    case "viewercount":
      data = { viewercount: event.viewercount };
      break;
    case "layers":
      data = { [String(mline)]: event.layers.map(layerOf) };
      break;
    default:
      data = {};
  }
  return `id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A layer as the draft describes one: a layer with bitrate 0 is inactive. */
function layerOf(l: LayerState): { rid: string; bitrate: number; active: boolean; forwarded: boolean } {
  return { rid: l.rid, bitrate: l.active ? l.bitrate : 0, active: l.active, forwarded: l.forwarded };
}

class EventStream {
  private queue: string[] = [];
  private pull: FastifyReply | undefined;
  private nextId = 1;
  private closed = false;
  private readonly stop: () => void;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastLayers = "";
  /** Position of the viewer's video section in its offer: the key of a `layers` event. */
  private readonly mline: number;

  constructor(
    readonly id: string,
    readonly sessionId: string,
    entry: SessionEntry,
    private readonly wanted: ReadonlySet<RoomEventType>,
    private readonly onClosed: (stream: EventStream) => void,
  ) {
    const room = entry.room;
    const subscriber = entry.session as Subscriber;
    this.mline = subscriber.received.find((r) => r.track.kind === "video")?.mline ?? 0;
    this.stop = room.events.on((event) => {
      if (event.type === "reconnect" && event.session !== undefined && event.session !== sessionId) return;
      this.push(event);
    });
    // What holds now: an active publication, the audience; never an initial `inactive` (the draft).
    const continuity = continuityOf(room);
    if (continuity ? continuity.isActive : room.publisher !== undefined && !room.publisher.closed) this.push({ type: "active" });
    this.push({ type: "viewercount", viewercount: room.subscribers.size });
    if (continuity && wanted.has("layers")) {
      const layersTimer = setInterval(() => {
        const layers = continuity.layers;
        if (!layers) return;
        const text = JSON.stringify(layers.map(layerOf));
        if (text === this.lastLayers) return;
        this.lastLayers = text;
        this.push({ type: "layers", layers });
      }, LAYERS_MS);
      layersTimer.unref();
      this.timers.push(layersTimer);
    }
    const keepalive = setInterval(() => this.pull?.raw.write(": keepalive\n\n"), KEEPALIVE_MS);
    keepalive.unref();
    this.timers.push(keepalive);
    subscriber.onEnd(() => this.close());
  }

  private push(event: RoomEvent): void {
    if (this.closed || !this.wanted.has(event.type)) return;
    const text = formatEvent(this.nextId++, event, this.mline);
    if (this.pull) {
      this.pull.raw.write(text);
      return;
    }
    this.queue.push(text);
    if (this.queue.length > QUEUE_LIMIT) this.queue.shift();
  }

  /** A long pull: what is queued at once, then each event as it comes, until the client or the stream goes. */
  attach(request: FastifyRequest, reply: FastifyReply): void {
    // One pull at a time: a new one replaces the old (a client that reconnected).
    this.pull?.raw.end();
    reply.hijack();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = String(value);
    reply.raw.writeHead(200, {
      ...headers,
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    this.pull = reply;
    const queued = this.queue;
    this.queue = [];
    reply.raw.write(queued.join("") || ": open\n\n");
    request.raw.once("close", () => {
      if (this.pull === reply) this.pull = undefined;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stop();
    for (const t of this.timers) clearInterval(t);
    this.queue = [];
    this.pull?.raw.end();
    this.pull = undefined;
    this.onClosed(this);
  }
}

export interface EventRouteDeps {
  rooms: Rooms;
  auth: Authorizer;
}

export function registerEventRoutes(app: FastifyInstance, deps: EventRouteDeps): void {
  const { rooms, auth } = deps;
  const streams = new Map<string, EventStream>();

  /** The WHEP session the request names, authorised like the session itself; undefined after replying. */
  const sessionOf = (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): SessionEntry | undefined => {
    const entry = rooms.session("whep", request.params.id);
    if (!entry || !(entry.session instanceof Subscriber) || entry.session.closed) {
      sendError(reply, 404, "session not found");
      return undefined;
    }
    // EventSource cannot send headers: the token may come as ?token= here.
    if (auth.enabled && !auth.allows(tokenOf(request, true), entry.room.name, "subscribe")) {
      unauthorized(reply);
      return undefined;
    }
    return entry;
  };

  const streamOf = (request: FastifyRequest<{ Params: { id: string; stream: string } }>, reply: FastifyReply): EventStream | undefined => {
    if (!sessionOf(request, reply)) return undefined;
    const stream = streams.get(request.params.stream);
    if (!stream || stream.sessionId !== request.params.id) {
      sendError(reply, 404, "event stream not found");
      return undefined;
    }
    return stream;
  };

  app.post<{ Params: { id: string }; Body: unknown }>(
    "/api/whep/session/:id/sse",
    { schema: SCHEMAS.eventsCreate, attachValidation: true },
    async (request, reply) => {
      const entry = sessionOf(request, reply);
      if (!entry) return reply;
      let wanted = new Set<RoomEventType>(ROOM_EVENT_TYPES);
      if (Array.isArray(request.body)) {
        // Types this server does not send are ignored; an empty list wants nothing.
        wanted = new Set(ROOM_EVENT_TYPES.filter((t) => (request.body as unknown[]).includes(t)));
      } else if (request.body !== undefined && request.body !== null && request.body !== "") {
        return sendError(reply, 400, "expected a JSON array of event types");
      }
      const id = randomBytes(12).toString("base64url");
      streams.set(id, new EventStream(id, request.params.id, entry, wanted, (s) => streams.delete(s.id)));
      reply.header("Location", `/api/whep/session/${request.params.id}/sse/${id}`);
      return reply.code(201).send();
    },
  );

  app.get<{ Params: { id: string; stream: string } }>("/api/whep/session/:id/sse/:stream", { schema: SCHEMAS.eventsStream }, async (request, reply) => {
    const stream = streamOf(request, reply);
    if (!stream) return reply;
    stream.attach(request, reply);
    return reply;
  });

  app.delete<{ Params: { id: string; stream: string } }>("/api/whep/session/:id/sse/:stream", { schema: SCHEMAS.eventsDelete }, async (request, reply) => {
    const stream = streamOf(request, reply);
    if (!stream) return reply;
    stream.close();
    return reply.code(200).send();
  });
}
