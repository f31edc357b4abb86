// WHEP server-sent events through the wire: the Link of a WHEP 201, the event stream made by a
// POST there, and each event (active, viewercount, inactive, reconnect) arriving once, in order,
// as the room's publishers and viewers come and go; the stream ends with its session.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, waitFor } from "../helpers/net.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type WhepClient } from "../helpers/whep-client.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";
import { closeAfterEach } from "../helpers/closers.js";

const REL = "urn:ietf:params:whep:ext:core:server-sent-events";
const SMALL = { width: 320, height: 240, bitrateKbps: 300, fps: 15, gop: 15 } as const;

const track = closeAfterEach();

async function publish(server: TestServer, room: string, codec: "VP8" | "H264" = "VP8"): Promise<WhipClient> {
  const attempt = async () => track((await publishTestStream(server.whipUrl(room), { video: { codec }, audio: true, source: SMALL })).client);
  try {
    return await attempt();
  } catch (err) {
    // werift's DTLS client can fail a handshake on a busy machine; not what this file tests.
    if (!/not connected/.test((err as Error).message)) throw err;
    return attempt();
  }
}

interface Received {
  id: number;
  event: string;
  data: unknown;
}

/** Reads an event stream into `events` until it ends; resolves then. */
class EventReader {
  readonly events: Received[] = [];
  ended = false;
  private readonly controller = new AbortController();
  readonly done: Promise<void>;

  constructor(
    readonly url: string,
    readonly status: number,
    body: ReadableStream<Uint8Array> | null,
  ) {
    this.done = this.read(body);
  }

  static async open(url: string): Promise<EventReader> {
    const controller = new AbortController();
    const res = await fetch(url, { headers: { Accept: "text/event-stream" }, signal: controller.signal });
    const reader = new EventReader(url, res.status, res.body);
    reader.abort = () => controller.abort();
    return reader;
  }

  abort: () => void = () => this.controller.abort();

  private async read(body: ReadableStream<Uint8Array> | null): Promise<void> {
    if (!body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = new Map<string, string>();
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
          }
          if (!fields.has("event")) continue;
          this.events.push({ id: Number(fields.get("id")), event: fields.get("event")!, data: JSON.parse(fields.get("data") ?? "null") });
        }
      }
    } catch {
      // aborted
    }
    this.ended = true;
  }

  names(): string[] {
    return this.events.map((e) => e.event);
  }

  close(): Promise<void> {
    this.abort();
    return this.done;
  }
}

function eventsUrl(server: TestServer, viewer: WhepClient, link: string | null): string {
  expect(link).toBeTruthy();
  const entry = link!.split(/,(?=\s*<)/).find((l) => l.includes(`rel="${REL}"`));
  expect(entry).toBeDefined();
  expect(entry).toMatch(/events="[^"]*viewercount[^"]*"/);
  const path = /<([^>]+)>/.exec(entry!)![1]!;
  expect(path).toBe(`${new URL(viewer.location!, server.url).pathname}/sse`);
  return new URL(path, server.url).toString();
}

async function openStream(server: TestServer, entry: string, wanted?: string[]): Promise<EventReader> {
  const res = await fetch(entry, {
    method: "POST",
    ...(wanted ? { headers: { "Content-Type": "application/json" }, body: JSON.stringify(wanted) } : {}),
  });
  expect(res.status).toBe(201);
  const location = res.headers.get("location");
  expect(location).toBeTruthy();
  const reader = track(await EventReader.open(new URL(location!, server.url).toString()));
  expect(reader.status).toBe(200);
  return reader;
}

describe("WHEP server-sent events", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ ROOM_GRACE_SECONDS: "5" });
  });
  afterAll(() => server.close());

  it("active, viewercount, inactive and active again, in order; gone with the session", async () => {
    const room = "events-order";
    const first = await publish(server, room);
    await sleep(500);
    const { client: viewer, result } = await playStream(server.whepUrl(room));
    track(viewer);
    const entry = eventsUrl(server, viewer, result.response.headers.get("link"));
    const stream = await openStream(server, entry);
    await waitFor(() => stream.events.length >= 2, { timeoutMs: 3000, what: "the first events" });
    expect(stream.events.slice(0, 2)).toEqual([
      { id: 1, event: "active", data: {} },
      { id: 2, event: "viewercount", data: { viewercount: 1 } },
    ]);

    const { client: second } = await playStream(server.whepUrl(room));
    await waitFor(() => stream.names().length >= 3, { timeoutMs: 3000, what: "viewercount 2" });
    await second.close();
    await waitFor(() => stream.names().length >= 4, { timeoutMs: 3000, what: "viewercount 1" });

    await first.close();
    await waitFor(() => stream.names().length >= 5, { timeoutMs: 3000, what: "inactive" });
    await publish(server, room);
    await waitFor(() => stream.names().length >= 6, { timeoutMs: 8000, what: "active again" });
    await sleep(300);
    expect(stream.events.map((e) => [e.event, e.data])).toEqual([
      ["active", {}],
      ["viewercount", { viewercount: 1 }],
      ["viewercount", { viewercount: 2 }],
      ["viewercount", { viewercount: 1 }],
      ["inactive", {}],
      ["active", {}],
    ]);
    expect(stream.events.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);

    // The stream ends with its session, and is gone after.
    await viewer.close();
    await stream.done;
    expect(stream.ended).toBe(true);
    const again = await fetch(stream.url);
    expect(again.status).toBe(404);
  });

  it("a stream takes only the events asked for, keeps them until pulled, and ends on DELETE", async () => {
    const room = "events-filter";
    await publish(server, room);
    await sleep(500);
    const { client: viewer, result } = await playStream(server.whepUrl(room));
    track(viewer);
    const entry = eventsUrl(server, viewer, result.response.headers.get("link"));
    const made = await fetch(entry, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(["viewercount"]) });
    expect(made.status).toBe(201);
    const location = new URL(made.headers.get("location")!, server.url).toString();
    // Events before the first pull wait for it.
    const { client: second } = await playStream(server.whepUrl(room));
    track(second);
    const stream = track(await EventReader.open(location));
    await waitFor(() => stream.events.length >= 2, { timeoutMs: 3000, what: "queued events" });
    expect(stream.names()).toEqual(["viewercount", "viewercount"]);
    expect(stream.events.map((e) => e.data)).toEqual([{ viewercount: 1 }, { viewercount: 2 }]);
    const del = await fetch(location, { method: "DELETE" });
    expect(del.status).toBe(200);
    await stream.done;
    expect((await fetch(location)).status).toBe(404);
  });

  it("a viewer whose codec the new publisher does not send is told to reconnect", async () => {
    const room = "events-reconnect";
    const first = await publish(server, room, "VP8");
    await sleep(500);
    const { client: viewer, result } = await playStream(server.whepUrl(room), { video: ["VP8"] });
    track(viewer);
    const stream = await openStream(server, eventsUrl(server, viewer, result.response.headers.get("link")), ["reconnect", "inactive"]);
    await first.close();
    await publish(server, room, "H264");
    await stream.done;
    expect(stream.names()).toEqual(["inactive", "reconnect"]);
    expect(stream.events[1]!.data).toEqual({});
  });

  it("the entry point answers 404 for an unknown session", async () => {
    const res = await fetch(`${server.url}/api/whep/session/nope/sse`, { method: "POST" });
    expect(res.status).toBe(404);
  });
});
