// A room fed by plain RTP (what an ingest's FFmpeg produces) is a room like any other: WHEP
// viewers decode it, the registry lists it, and closing the source ends the room; the RTP of
// successive FFmpeg runs is spliced into one stream. No HTTP here: test/bridges/ingest.test.ts
// proves the same through the ingest API, test/bridges/relay-seamless.test.ts a looping relay.
import { afterAll, describe, expect, it } from "vitest";
import { RtpHeader, RtpPacket } from "werift";
import { isDomainError } from "../../src/errors.js";
import { RunSplice } from "../../src/sfu/rtp-source.js";
import { startFfmpegSource } from "../helpers/ffmpeg-source.js";
import { subscribeTo, testRooms } from "../helpers/sfu.js";

describe("RTP source rooms", () => {
  const { rooms } = testRooms();
  afterAll(() => rooms.close());

  it("FFmpeg's RTP on the source's ports reaches WHEP viewers, starting on a keyframe", async () => {
    const source = await rooms.ingest("ingested", [
      { kind: "video", codec: { payloadType: 96, name: "H264", clockRate: 90000, fmtp: "packetization-mode=1;profile-level-id=42e01f", rtcpFeedback: [] } },
      { kind: "audio", codec: { payloadType: 111, name: "opus", clockRate: 48000, channels: 2, fmtp: "", rtcpFeedback: [] } },
    ]);
    const ffmpeg = startFfmpegSource({
      video: { port: source.ports[0], codec: "H264", payloadType: 96, gop: 15, width: 320, height: 240 },
      audio: { port: source.ports[1], payloadType: 111 },
    });
    try {
      await expect(rooms.ingest("ingested", [])).rejects.toSatisfy((err) => isDomainError(err, "conflict"));
      expect(rooms.list()).toEqual([expect.objectContaining({ name: "ingested", hasPublisher: true, codecs: ["H264", "opus"] })]);
      const { client } = await subscribeTo(rooms, "ingested", {});
      try {
        await client.waitForKeyframes(1, 5000);
        await client.waitForFrames(20, 5000, "video");
        expect(client.video.firstFrameWasKeyframe).toBe(true);
        await client.waitForPackets(50, "audio", 5000);
      } finally {
        await client.close();
      }
      expect(source.packets).toBeGreaterThan(50);
    } finally {
      await ffmpeg.close();
      await source.close("delete");
    }
    expect(rooms.list()).toEqual([]);
    expect(rooms.get("ingested")).toBeUndefined();
  }, 30_000);
});

describe("RTP source runs spliced", () => {
  const packet = (ssrc: number, sequenceNumber: number, timestamp: number) =>
    new RtpPacket(new RtpHeader({ ssrc, sequenceNumber, timestamp, payloadType: 96 }), Buffer.alloc(1));

  it("a new FFmpeg run continues the numbering: SSRC kept, sequence one past the last, timestamp advanced by the time between", () => {
    const splice = new RunSplice(90_000);
    const out: [number, number, number][] = [];
    const send = (p: RtpPacket, now: number) => {
      splice.rewrite(p, now);
      out.push([p.header.ssrc, p.header.sequenceNumber, p.header.timestamp]);
    };
    // Before any restart packets go out as they came.
    send(packet(7, 65_534, 4_294_960_000), 0);
    send(packet(7, 65_535, 4_294_963_600), 40);
    splice.restarted();
    // The next run numbers from elsewhere (FFmpeg picks them at random).
    send(packet(9, 100, 5000), 290);
    send(packet(9, 101, 8600), 330);
    expect(out).toEqual([
      [7, 65_534, 4_294_960_000],
      [7, 65_535, 4_294_963_600],
      [7, 0, (4_294_963_600 + 250 * 90) >>> 0],
      [7, 1, (4_294_963_600 + 250 * 90 + 3600) >>> 0],
    ]);
    // A run that starts at once still moves the clock on.
    splice.restarted();
    send(packet(9, 5, 0), 330);
    expect(out.at(-1)).toEqual([7, 2, (4_294_963_600 + 250 * 90 + 3600 + 900) >>> 0]);
  });

  it("a restart before the first packet changes nothing", () => {
    const splice = new RunSplice(48_000);
    splice.restarted();
    const p = packet(3, 10, 20);
    splice.rewrite(p, 5);
    expect([p.header.ssrc, p.header.sequenceNumber, p.header.timestamp]).toEqual([3, 10, 20]);
  });
});
