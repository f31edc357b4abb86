// Forwarding through the wire: FFmpeg-fed werift publishers, several werift subscribers over
// real UDP, the server in between. Each subscriber proves it could decode: it starts on a
// keyframe and keeps receiving frames.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";
import { sleep, videoCodec, WhepSubscriber, WhipPublisher } from "../helpers/peers.js";

const open: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];
function track<T extends { close(o?: { vanish?: boolean }): Promise<void> }>(x: T): T {
  open.push(x);
  return x;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((x) => x.close()));
});

async function metric(server: TestServer, line: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  for (const l of text.split("\n")) {
    const m = line.exec(l);
    if (m) return Number(l.split(" ").pop());
  }
  return undefined;
}

describe.each([
  { video: "VP8" as const, gop: 30 },
  { video: "H264" as const, gop: 30 },
])("$video + Opus to several subscribers", ({ video, gop }) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it("every subscriber starts on a keyframe, decodes frames and gets audio", async () => {
    const room = `fw-${video}`;
    const pub = track(await WhipPublisher.publish(server.url, room, { video, audio: true, gop }));
    await sleep(500);
    const subs: WhepSubscriber[] = [];
    for (let i = 0; i < 3; i++) {
      const { subscriber, exchange } = await WhepSubscriber.play(server.url, room);
      expect(exchange.status).toBe(201);
      subs.push(track(subscriber));
    }
    // Two keyframe intervals are enough for everyone to have started and decoded for a while.
    await sleep(2500);
    for (const s of subs) {
      expect(s.video.codec?.toUpperCase()).toBe(video);
      expect(s.video.firstWasKeyframe).toBe(true);
      expect(s.video.keyframes).toBeGreaterThanOrEqual(1);
      expect(s.video.frames).toBeGreaterThan(20);
      expect(s.audio.packets).toBeGreaterThan(50);
      // Joined within one keyframe interval (1 s) plus connection setup.
      expect(s.video.firstKeyframeMs).toBeLessThan(2500);
    }
    // Joining asked the publisher for a keyframe (coalesced: fewer PLIs than subscribers is fine).
    expect(pub.plis).toBeGreaterThanOrEqual(1);

    expect(await metric(server, new RegExp(`^live_subscribers\\{room="${room}"\\}`))).toBe(3);
    expect(await metric(server, new RegExp(`^live_rtp_packets_total\\{room="${room}"\\}`))).toBeGreaterThan(100);
    expect(await metric(server, new RegExp(`^live_rtp_bytes_total\\{room="${room}"\\}`))).toBeGreaterThan(10_000);
    expect(await metric(server, /^live_rooms /)).toBe(1);

    // The publisher's DELETE ends the room, its viewers' sessions and its metric series.
    await pub.close();
    const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as unknown[];
    expect(rooms).toEqual([]);
    expect(await metric(server, new RegExp(`room="${room}"`))).toBeUndefined();
    expect(await metric(server, /^live_rooms /)).toBe(0);
    const gone = await fetch(server.url + subs[0].location, { method: "DELETE" });
    expect(gone.status).toBe(404);
  });
});

describe("H.264 profiles", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it("a subscriber gets the publisher's exact profile even when it prefers another", async () => {
    track(await WhipPublisher.publish(server.url, "high", { video: "H264", h264Profile: "high", gop: 30 }));
    // Baseline listed first: werift alone would answer with it; the server must pick High.
    const { subscriber, exchange } = await WhepSubscriber.play(server.url, "high", {
      video: [videoCodec("H264", "42e01f"), videoCodec("H264", "64001f")],
      audio: false,
    });
    track(subscriber);
    expect(exchange.status).toBe(201);
    expect(exchange.answer).toMatch(/profile-level-id=64001f/);
    expect(exchange.answer).not.toMatch(/profile-level-id=42e01f/);
    await sleep(2000);
    expect(subscriber.video.firstWasKeyframe).toBe(true);
    expect(subscriber.video.frames).toBeGreaterThan(20);
  });

  it("422 naming the codec when the subscriber cannot take it", async () => {
    track(await WhipPublisher.publish(server.url, "h264only", { video: "H264", gop: 30 }));
    const vp8 = await WhepSubscriber.play(server.url, "h264only", { video: [videoCodec("VP8")], audio: false });
    expect(vp8.exchange.status).toBe(422);
    expect(JSON.parse(vp8.exchange.answer).error).toContain("H264 (profile-level-id=42e01f, packetization-mode=1)");
    const main = await WhepSubscriber.play(server.url, "h264only", { video: [videoCodec("H264", "4d001f")], audio: false });
    expect(main.exchange.status).toBe(422);
  });
});

describe("peers that vanish without DELETE", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ PEER_TIMEOUT_SECONDS: "5" });
  });
  afterAll(() => server.close());

  const rooms = async () => (await (await fetch(`${server.url}/api/rooms`)).json()) as { name: string; subscribers: number }[];

  it("a vanished subscriber is removed within 10 s, a vanished publisher ends the room within 10 s", async () => {
    const pub = track(await WhipPublisher.publish(server.url, "vanish", { video: "VP8", gop: 30 }));
    const { subscriber } = await WhepSubscriber.play(server.url, "vanish", { audio: false });
    track(subscriber);
    expect((await rooms())[0]?.subscribers).toBe(1);

    const t0 = Date.now();
    await subscriber.close({ vanish: true });
    let subGone = false;
    while (Date.now() - t0 < 10_000 && !subGone) {
      subGone = (await rooms())[0]?.subscribers === 0;
      if (!subGone) await sleep(250);
    }
    expect(subGone).toBe(true);

    const t1 = Date.now();
    await pub.close({ vanish: true });
    let roomGone = false;
    while (Date.now() - t1 < 10_000 && !roomGone) {
      roomGone = (await rooms()).length === 0;
      if (!roomGone) await sleep(250);
    }
    expect(roomGone).toBe(true);
  }, 40_000);
});
