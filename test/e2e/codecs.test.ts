// VP9 media end to end, profile 0 and profile 2 (10-bit), and AV1: FFmpeg encodes, a werift client
// publishes over WHIP with the profile in its offer, werift WHEP viewers that take that profile
// receive whole frames starting on a keyframe, the recording is an IVF ffprobe reads with the
// profile, and a viewer that offers only the other profile gets 422 naming the codec.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probe } from "../helpers/ffprobe.js";
import { liveRooms } from "../helpers/http.js";
import { sleep, waitFor } from "../helpers/net.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, WhepClient } from "../helpers/whep-client.js";
import { encodeAv1Ivf, replayAv1 } from "../helpers/av1-source.js";
import { publishTestStream, WhipClient } from "../helpers/whip-client.js";

const need = requireOrSkip("ffmpeg", "ffprobe");

describe.skipIf(!need.ok)(need.title("VP9 profiles 0 and 2 through the server"), () => {
  let server: TestServer;
  const peers: (WhipClient | WhepClient)[] = [];
  beforeAll(async () => {
    server = await startServer({ RECORD_ENABLED: "true" });
  });
  afterAll(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await server?.close();
  });

  it.each([0, 2] as const)(
    "VP9 profile %i: viewers decode whole frames from a keyframe, the recording has the profile, the other profile is 422",
    async (profile) => {
      const room = `vp9p${profile}`;
      const { client: pub } = await publishTestStream(server.whipUrl(room), {
        video: { codec: "VP9", vp9Profile: profile },
        audio: false,
        source: { width: 320, height: 240, bitrateKbps: 400, gop: 30 },
      });
      peers.push(pub);
      await sleep(500);
      const viewers: WhepClient[] = [];
      for (let i = 0; i < 2; i++) {
        const { client } = await playStream(server.whepUrl(room), { audio: false, video: [{ codec: "VP9", profileId: profile }] });
        peers.push(client);
        viewers.push(client);
      }
      for (const v of viewers) {
        await v.waitForKeyframes(1, 10_000);
        await v.waitForFrames(30, 10_000, "video");
        expect(v.video.codec?.name.toUpperCase()).toBe("VP9");
        expect(v.video.firstFrameWasKeyframe).toBe(true);
      }
      const other = (profile === 0 ? 2 : 0) as 0 | 2;
      const refused = new WhepClient({ audio: false, video: [{ codec: "VP9", profileId: other }] });
      peers.push(refused);
      await expect(refused.play(server.whepUrl(room))).rejects.toThrow(/422/);

      await pub.close();
      // DELETE is answered once the room has ended.
      expect(await liveRooms(server.url)).not.toContain(room);
      // The recorder finalises on the room's end; its file carries the publisher's profile.
      let file: string | undefined;
      await waitFor(() => (file = readdirSync(server.recordDir).find((f) => f.startsWith(`${room}_video`) && f.endsWith(".ivf"))) !== undefined, {
        timeoutMs: 5000,
        what: "the IVF file",
      });
      const p = await probe(path.join(server.recordDir, file!));
      expect(p.streams[0]?.codec_name).toBe("vp9");
      expect(p.streams[0]?.profile).toBe(`Profile ${profile}`);
      if (profile === 2) expect(p.streams[0]?.pix_fmt).toBe("yuv420p10le");
    },
    40_000,
  );
});

describe.skipIf(!need.ok)(need.title("AV1 through the server"), () => {
  let server: TestServer;
  let dir: string;
  const peers: (WhipClient | WhepClient)[] = [];
  let source: { stop(): void } | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "av1-"));
    encodeAv1Ivf(path.join(dir, "clip.ivf"), 3);
    server = await startServer({ RECORD_ENABLED: "true" });
  });
  afterAll(async () => {
    source?.stop();
    await Promise.all(peers.map((p) => p.close()));
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("an AV1 publisher's temporal units reach viewers whole, from a sequence start, and the recording is AV1", async () => {
    const pub = await WhipClient.create({ video: { codec: "AV1" }, audio: false });
    peers.push(pub);
    source = replayAv1(path.join(dir, "clip.ivf"), pub.port("video"));
    await pub.publish(server.whipUrl("av1"));
    await sleep(300);
    const { client } = await playStream(server.whepUrl("av1"), { audio: false, video: ["AV1"] });
    peers.push(client);
    await client.waitForKeyframes(1, 10_000);
    await client.waitForFrames(20, 10_000, "video");
    expect(client.video.codec?.name.toUpperCase()).toBe("AV1");
    expect(client.video.firstFrameWasKeyframe).toBe(true);
    source.stop();
    source = undefined;
    await pub.close();
    expect(await liveRooms(server.url)).not.toContain("av1");
    let file: string | undefined;
    await waitFor(() => (file = readdirSync(server.recordDir).find((f) => f.startsWith("av1_video") && f.endsWith(".ivf"))) !== undefined, {
      timeoutMs: 5000,
      what: "the IVF file",
      describe: () => readdirSync(server.recordDir).join(", "),
    });
    const p = await probe(path.join(server.recordDir, file!));
    expect(p.streams[0]).toMatchObject({ codec_name: "av1", width: 320, height: 240 });
    expect(Number(p.streams[0]?.nb_read_frames)).toBeGreaterThan(15);
  }, 40_000);
});
