// Forwarding through the wire: FFmpeg-fed werift publishers, several werift subscribers over
// real UDP, the server in between. Each subscriber proves it could decode: it starts on a
// keyframe and keeps receiving frames. The server runs the default forwarding path: native where
// the addon is built (WHIPSFU_NATIVE=off forces the JavaScript one), so werift decrypts its output.
import { RTCRtpHeaderExtensionParameters, useAbsSendTime, useSdesMid } from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeForwarding } from "../../src/sfu/native.js";
import { nativeStats } from "../../src/sfu/native-output.js";
import { sleep } from "../helpers/net.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, WhepClient } from "../helpers/whep-client.js";
import { AUDIO_LEVEL_URI, publishTestStream, type WhipClient } from "../helpers/whip-client.js";
import { closeAfterEach } from "../helpers/closers.js";

const track = closeAfterEach();

/** The source these tests always used: a 320x240 test pattern at 400 kb/s, 30 fps. */
const SMALL = { width: 320, height: 240, bitrateKbps: 400 } as const;

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
    const pub = track((await publishTestStream(server.whipUrl(room), { video: { codec: video }, audio: true, source: { ...SMALL, gop } })).client);
    const nativeSent = nativeStats.sent;
    await sleep(500);
    const subs: WhepClient[] = [];
    for (let i = 0; i < 3; i++) {
      // playStream throws unless the POST answered 201.
      const { client, result } = await playStream(server.whepUrl(room));
      subs.push(track(client));
      expect(result.status).toBe(201);
    }
    // Two keyframe intervals are enough for everyone to have started and decoded for a while.
    await sleep(2500);
    for (const s of subs) {
      expect(s.video.codec?.name.toUpperCase()).toBe(video);
      expect(s.video.firstFrameWasKeyframe).toBe(true);
      expect(s.video.keyframes).toBeGreaterThanOrEqual(1);
      expect(s.video.frames).toBeGreaterThan(20);
      expect(s.audio.packets).toBeGreaterThan(50);
      // Joined within one keyframe interval (1 s) plus connection setup.
      expect(s.video.firstKeyframeMs).toBeLessThan(2500);
      // The stream itself is what was published (x264 baseline writes 42c01f in its SPS).
      if (video === "H264") expect(s.video.spsProfileLevelId?.slice(0, 2)).toBe("42");
    }
    // Joining asked the publisher for a keyframe (coalesced: fewer PLIs than subscribers is fine).
    expect(pub.plis).toBeGreaterThanOrEqual(1);

    expect(await metric(server, new RegExp(`^live_subscribers\\{room="${room}"\\}`))).toBe(3);
    expect(await metric(server, new RegExp(`^live_rtp_packets_total\\{room="${room}"\\}`))).toBeGreaterThan(100);
    expect(await metric(server, new RegExp(`^live_rtp_bytes_total\\{room="${room}"\\}`))).toBeGreaterThan(10_000);
    expect(await metric(server, /^live_rooms /)).toBe(1);
    const path = nativeForwarding.addon ? "native" : "fast";
    expect(await metric(server, new RegExp(`^live_forward_path\\{path="${path}"\\}`))).toBe(1);
    // Every packet the subscribers decoded went through the addon when it is built.
    if (nativeForwarding.addon) expect(nativeStats.sent - nativeSent).toBeGreaterThan(subs.reduce((a, s) => a + s.video.packets + s.audio.packets, 0) * 0.9);

    // The publisher's DELETE ends the room, its viewers' sessions and its metric series.
    await pub.close();
    const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as unknown[];
    expect(rooms).toEqual([]);
    expect(await metric(server, new RegExp(`room="${room}"`))).toBeUndefined();
    expect(await metric(server, /^live_rooms /)).toBe(0);
    const gone = await fetch(subs[0]!.location!, { method: "DELETE" });
    expect(gone.status).toBe(404);
  });
});

describe("H.264 profiles", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  const publishH264 = async (room: string, h264Profile: "baseline" | "high"): Promise<WhipClient> =>
    track(
      (
        await publishTestStream(server.whipUrl(room), {
          video: { codec: "H264", h264Profile },
          audio: false,
          source: { ...SMALL, gop: 30 },
        })
      ).client,
    );

  it("a subscriber gets the publisher's exact profile even when it prefers another", async () => {
    await publishH264("high", "high");
    // Baseline listed first: werift alone would answer with it; the server must pick High.
    const { client: subscriber, result } = await playStream(server.whepUrl("high"), {
      video: [
        { codec: "H264", profileLevelId: "42e01f" },
        { codec: "H264", profileLevelId: "64001f" },
      ],
      audio: false,
    });
    track(subscriber);
    expect(result.status).toBe(201);
    expect(result.answer).toMatch(/profile-level-id=64001f/);
    expect(result.answer).not.toMatch(/profile-level-id=42e01f/);
    await sleep(2000);
    expect(subscriber.video.firstFrameWasKeyframe).toBe(true);
    expect(subscriber.video.frames).toBeGreaterThan(20);
    // Not only the SDP: the SPS in the stream says High (profile_idc 100 = 0x64).
    expect(subscriber.video.spsProfileLevelId).toMatch(/^64/);
  });

  it("422 naming the codec when the subscriber cannot take it", async () => {
    await publishH264("h264only", "baseline");
    const vp8 = track(new WhepClient({ video: ["VP8"], audio: false }));
    const vp8Res = await vp8.postOffer(server.whepUrl("h264only"));
    expect(vp8Res.status).toBe(422);
    expect(JSON.parse(vp8Res.body).error).toContain("H264 (profile-level-id=42e01f, packetization-mode=1)");
    const main = track(new WhepClient({ video: [{ codec: "H264", profileLevelId: "4d001f" }], audio: false }));
    expect((await main.postOffer(server.whepUrl("h264only"))).status).toBe(422);
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
    const pub = track((await publishTestStream(server.whipUrl("vanish"), { video: { codec: "VP8" }, audio: false, source: { ...SMALL, gop: 30 } })).client);
    const subscriber = track((await playStream(server.whepUrl("vanish"), { audio: false })).client);
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

describe("header extensions", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it("audio level reaches a viewer under the id its own offer gave it, per packet, and nothing under ids it did not offer", async () => {
    // The publisher numbers audio level 3 (after mid and abs-send-time); this viewer offers it first, as 1.
    const pub = track((await publishTestStream(server.whipUrl("levels"), { video: false, audio: true, audioLevel: true })).client);
    expect(pub.answer).toMatch(new RegExp(`^a=extmap:3 ${AUDIO_LEVEL_URI}\\r?$`, "m"));
    const withLevel = track(
      new WhepClient({
        video: false,
        peerConfig: { headerExtensions: { audio: [new RTCRtpHeaderExtensionParameters({ uri: AUDIO_LEVEL_URI }), useSdesMid(), useAbsSendTime()], video: [] } },
      }),
    );
    const without = track(new WhepClient({ video: false }));
    const seen = new Map<WhepClient, { sequenceNumber: number; extensions: { id: number; payload: Buffer }[] }[]>([
      [withLevel, []],
      [without, []],
    ]);
    for (const [viewer, packets] of seen) {
      viewer.pc.onTrack.subscribe((t) => {
        t.onReceiveRtp.subscribe((rtp) => packets.push({ sequenceNumber: rtp.header.sequenceNumber, extensions: rtp.header.extensions }));
      });
    }
    await withLevel.play(server.whepUrl("levels"), {});
    await without.play(server.whepUrl("levels"), {});
    expect(withLevel.answer).toMatch(new RegExp(`^a=extmap:1 ${AUDIO_LEVEL_URI}\\r?$`, "m"));
    await sleep(2000);

    const leveled = seen.get(withLevel)!;
    expect(leveled.length).toBeGreaterThan(50);
    for (const p of leveled) expect(p.extensions.map((e) => [e.id, e.payload.length])).toEqual([[1, 1]]);
    // The level byte is the publisher's, packet by packet: consecutive packets carry consecutive levels.
    let consecutive = 0;
    for (let i = 1; i < leveled.length; i++) {
      const a = leveled[i - 1]!;
      const b = leveled[i]!;
      if (b.sequenceNumber !== ((a.sequenceNumber + 1) & 0xffff)) continue;
      expect(b.extensions[0]!.payload[0]).toBe(0x80 | ((a.extensions[0]!.payload[0]! - 0x80 + 1) % 127));
      consecutive++;
    }
    expect(consecutive).toBeGreaterThan(40);
    const plain = seen.get(without)!;
    expect(plain.length).toBeGreaterThan(50);
    expect(plain.filter((p) => p.extensions.length > 0)).toEqual([]);
  }, 30_000);
});
