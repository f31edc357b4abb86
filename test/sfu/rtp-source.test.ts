// A room fed by plain RTP (what an ingest's FFmpeg produces) is a room like any other: WHEP
// viewers decode it, the registry lists it, and closing the source ends the room. No HTTP here:
// test/bridges/ingest.test.ts proves the same through the ingest API.
import { afterAll, describe, expect, it } from "vitest";
import { isDomainError } from "../../src/errors.js";
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
