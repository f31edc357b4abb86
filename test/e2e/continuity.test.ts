// Continuity through the wire with werift peers: a viewer keeps its one session while its
// publisher is deleted and another publishes within the grace, and while a primary goes silent
// and its backup takes over. What the viewer receives must stay one stream: the same SSRC,
// sequence numbers without a hole, timestamps moving on, a keyframe after each switch.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, waitFor } from "../helpers/net.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type FrameInfo, type WhepClient } from "../helpers/whep-client.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";
import { closeAfterEach } from "../helpers/closers.js";

const track = closeAfterEach();

/** Small and at 15 fps with a keyframe a second: light on a shared machine. */
const SMALL = { width: 320, height: 240, bitrateKbps: 300, fps: 15, gop: 15 } as const;

interface RoomRow {
  name: string;
  hasPublisher: boolean;
  subscribers: number;
  source?: string;
  backup?: boolean;
  failovers?: number;
}

/** waitFor with an asynchronous check. */
async function until(check: () => Promise<boolean>, opts: { timeoutMs: number; what: string }): Promise<void> {
  const end = performance.now() + opts.timeoutMs;
  while (!(await check())) {
    if (performance.now() >= end) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await sleep(100);
  }
}

async function roomRow(server: TestServer, name: string): Promise<RoomRow | undefined> {
  const rows = (await (await fetch(`${server.url}/api/rooms`)).json()) as RoomRow[];
  return rows.find((r) => r.name === name);
}

async function publish(server: TestServer, room: string, opts: { codec?: "VP8" | "H264"; backup?: boolean; gop?: number } = {}): Promise<WhipClient> {
  const url = server.whipUrl(room) + (opts.backup ? "/backup" : "");
  const source = { ...SMALL, gop: opts.gop ?? SMALL.gop };
  const attempt = async () => track((await publishTestStream(url, { video: { codec: opts.codec ?? "VP8" }, audio: true, source })).client);
  try {
    return await attempt();
  } catch (err) {
    // werift's DTLS client fails the handshake when a ClientHello is resent while the machine is
    // busy; that is not what these tests are about, so one more try.
    if (!/not connected/.test((err as Error).message)) throw err;
    return attempt();
  }
}

/** Video frames the viewer received, in order. */
function frames(viewer: WhepClient): FrameInfo[] {
  const list: FrameInfo[] = [];
  viewer.onFrame((f) => {
    if (f.kind === "video") list.push(f);
  });
  return list;
}

/** The largest wall-clock gap between consecutive video frames after `from` (ms). */
function longestGap(list: FrameInfo[], from = 0): number {
  let gap = 0;
  for (let i = 1; i < list.length; i++) if (list[i]!.at >= from) gap = Math.max(gap, list[i]!.at - list[i - 1]!.at);
  return gap;
}

/** Checks one stream: RTP timestamps never go back and move on with the wall clock across the switch. */
function expectContinuous(list: FrameInfo[]): void {
  for (let i = 1; i < list.length; i++) {
    const prev = list[i - 1]!;
    const cur = list[i]!;
    const dts = (cur.timestamp - prev.timestamp) >>> 0;
    // Forward by less than half the 32-bit space: never backwards.
    expect(dts).toBeLessThan(0x80000000);
    // And by about the time between them (90 kHz), within a second either way.
    const wall = ((cur.at - prev.at) * 90_000) / 1000;
    expect(Math.abs(dts - wall)).toBeLessThan(90_000);
  }
}

describe("publisher reconnect within the grace", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ ROOM_GRACE_SECONDS: "4", FAILOVER_MS: "600" });
  });
  afterAll(() => server.close());

  it("a viewer keeps its session across a DELETE and a new publisher, on one stream", async () => {
    const room = "grace-resume";
    const first = await publish(server, room);
    const { client: viewer } = await playStream(server.whepUrl(room));
    track(viewer);
    const list = frames(viewer);
    await waitFor(() => list.length > 10, { timeoutMs: 8000, what: "frames from the first publisher" });
    const ssrc = viewer.video.ssrc;
    const keyframes = viewer.video.keyframes;

    await first.close();
    expect(first.deleteStatus).toBe(200);
    const waiting = await roomRow(server, room);
    expect(waiting).toMatchObject({ hasPublisher: false, subscribers: 1 });
    expect(waiting?.source).toBeUndefined();
    await sleep(1000);
    expect(viewer.pc.connectionState).toBe("connected");

    const switchAt = performance.now();
    await publish(server, room);
    await waitFor(() => viewer.video.keyframes > keyframes && list.length > 0 && list[list.length - 1]!.at > switchAt + 1500, {
      timeoutMs: 8000,
      what: "frames from the second publisher",
    });
    expect(viewer.pc.connectionState).toBe("connected");
    expect(viewer.video.ssrc).toBe(ssrc);
    expect(viewer.video.sequenceGaps).toBe(0);
    expectContinuous(list);
    expect(await roomRow(server, room)).toMatchObject({ hasPublisher: true, source: "primary", subscribers: 1 });
    // Frames keep coming after the switch.
    const after = list.length;
    await sleep(1500);
    expect(list.length).toBeGreaterThan(after + 5);
  });

  it("without a new publisher the room ends after the grace, its viewers with it", async () => {
    const room = "grace-expires";
    const first = await publish(server, room);
    const { client: viewer } = await playStream(server.whepUrl(room));
    track(viewer);
    await first.close();
    await sleep(2000);
    expect((await roomRow(server, room))?.subscribers).toBe(1);
    await until(async () => (await roomRow(server, room)) === undefined, { timeoutMs: 6000, what: "the room to end" });
    const gone = await fetch(new URL(viewer.location!, server.url), { method: "DELETE" });
    expect(gone.status).toBe(404);
  });

  it("a new publisher of another codec ends the viewers that cannot take it", async () => {
    const room = "grace-codec";
    const first = await publish(server, room, { codec: "VP8" });
    const { client: viewer } = await playStream(server.whepUrl(room), { video: ["VP8"] });
    track(viewer);
    await first.close();
    await publish(server, room, { codec: "H264" });
    const gone = await fetch(new URL(viewer.location!, server.url), { method: "DELETE" });
    expect(gone.status).toBe(404);
    // A new viewer gets the new codec.
    const { client: next } = await playStream(server.whepUrl(room));
    track(next);
    await waitFor(() => next.video.frames > 5, { timeoutMs: 5000, what: "H.264 frames" });
    expect(next.video.codec?.name.toUpperCase()).toBe("H264");
  });

  it("a second primary is refused while the first publishes", async () => {
    const room = "grace-conflict";
    await publish(server, room);
    await expect(publish(server, room)).rejects.toThrow(/409/);
  });
});

describe("hot standby", () => {
  let server: TestServer;
  // on_failover callbacks land here.
  const hooks: Record<string, string>[] = [];
  const receiver = http.createServer((req, res) => {
    let data = "";
    req.on("data", (d: Buffer) => (data += d.toString("utf8")));
    req.on("end", () => {
      hooks.push(JSON.parse(data) as Record<string, string>);
      res.end("0");
    });
  });
  beforeAll(async () => {
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/failover`;
    server = await startServer({ ROOM_GRACE_SECONDS: "4", FAILOVER_MS: "1000", HOOK_ON_FAILOVER: hookUrl });
  });
  afterAll(async () => {
    await server.close();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  it("a silent primary hands over to its backup, and gets the room back once healthy", async () => {
    const room = "standby";
    const primary = await publish(server, room);
    // FFmpeg cannot answer a keyframe request as a browser or OBS does: short GOPs stand in for that.
    const backup = await publish(server, room, { backup: true, gop: 5 });
    const { client: viewer } = await playStream(server.whepUrl(room));
    track(viewer);
    const list = frames(viewer);
    await waitFor(() => list.length > 10, { timeoutMs: 8000, what: "frames from the primary" });
    await until(async () => (await roomRow(server, room))?.source === "primary", { timeoutMs: 5000, what: "the primary to be live" });
    const before = await roomRow(server, room);
    expect(before).toMatchObject({ source: "primary", backup: true });
    const failovers = before!.failovers!;
    const ssrc = viewer.video.ssrc;

    // The primary vanishes without a DELETE: its media stops, its session is still there.
    const killedAt = performance.now();
    await primary.close({ vanish: true });
    const stalledAt = list[list.length - 1]!.at;
    await waitFor(() => list[list.length - 1]!.at > stalledAt + 300, { timeoutMs: 4000, what: "frames from the backup" });
    const resumed = list.find((f) => f.at > stalledAt + 300)!;
    expect(resumed.at - killedAt).toBeLessThan(2000);
    expect(await roomRow(server, room)).toMatchObject({ source: "backup", failovers: failovers + 1 });
    expect(viewer.video.ssrc).toBe(ssrc);
    expect(viewer.video.sequenceGaps).toBe(0);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^live_failovers_total ${failovers + 1}$`, "m"));
    await waitFor(() => hooks.some((h) => h.stream === room && h.source === "backup"), { timeoutMs: 3000, what: "the on_failover callback" });
    expect(hooks.filter((h) => h.source === "backup").at(-1)).toMatchObject({ action: "on_failover", stream: room, source: "backup", reason: "failover" });

    // A new primary takes over again once it has sent for a few seconds.
    await publish(server, room, { gop: 5 });
    await until(async () => (await roomRow(server, room))?.source === "primary", { timeoutMs: 15_000, what: "the switch back" });
    await waitFor(() => hooks.some((h) => h.stream === room && h.source === "primary"), {
      timeoutMs: 3000,
      what: "the on_failover callback of the switch back",
    });
    await sleep(1000);
    // The switch back is at a keyframe of the primary, already flowing: no stall beyond the source's own.
    // (1.5 s: a loaded machine stalls the FFmpeg sources and this process now and then).
    expect(longestGap(list, killedAt + 2000)).toBeLessThan(1500);
    expectContinuous(list);
    expect(viewer.video.sequenceGaps).toBe(0);
    await backup.close();
  });

  it("a backup of other codecs is refused with 422", async () => {
    const room = "standby-codec";
    await publish(server, room, { codec: "VP8" });
    await expect(publish(server, room, { codec: "H264", backup: true })).rejects.toThrow(/422/);
  });
});
