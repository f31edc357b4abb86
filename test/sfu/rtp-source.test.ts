// A room fed by plain RTP (what an ingest's FFmpeg produces) is a room like any other: WHEP
// viewers decode it, /api/rooms and /metrics show it, and closing the source ends the room.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";
import { startFfmpegSource } from "../helpers/ffmpeg-source.js";
import { playStream } from "../helpers/whep-client.js";

describe("RTP source rooms", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it("FFmpeg's RTP on the source's ports reaches WHEP viewers, starting on a keyframe", async () => {
    const source = await server.app.rooms.ingest("ingested", [
      { kind: "video", codec: { payloadType: 96, name: "H264", clockRate: 90000, fmtp: "packetization-mode=1;profile-level-id=42e01f", rtcpFeedback: [] } },
      { kind: "audio", codec: { payloadType: 111, name: "opus", clockRate: 48000, channels: 2, fmtp: "", rtcpFeedback: [] } },
    ]);
    const ffmpeg = startFfmpegSource({
      video: { port: source.ports[0], codec: "H264", payloadType: 96, gop: 15, width: 320, height: 240 },
      audio: { port: source.ports[1], payloadType: 111 },
    });
    try {
      await expect(server.app.rooms.ingest("ingested", [])).rejects.toMatchObject({ kind: "conflict" });
      const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as { name: string; hasPublisher: boolean; codecs: string[] }[];
      expect(rooms).toEqual([expect.objectContaining({ name: "ingested", hasPublisher: true, codecs: ["H264", "opus"] })]);
      const { client } = await playStream(server.whepUrl("ingested"), {});
      try {
        await client.waitForKeyframes(1, 5000);
        await client.waitForFrames(20, 5000, "video");
        expect(client.video.firstFrameWasKeyframe).toBe(true);
        await client.waitForPackets(50, "audio", 5000);
      } finally {
        await client.close();
      }
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(Number(/^live_rtp_packets_total\{room="ingested"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(50);
    } finally {
      await ffmpeg.close();
      await source.close("delete");
    }
    const after = (await (await fetch(`${server.url}/api/rooms`)).json()) as unknown[];
    expect(after).toEqual([]);
  }, 30_000);
});
