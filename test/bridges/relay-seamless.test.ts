// A relay task looping a short clip into a room, through the wire: a werift WHEP viewer sees one
// stream across the passes (docs/bridges.md, "Relay tasks"; docs/media.md, "Sources fed by
// FFmpeg"): no sequence gap, no RTP timestamp jump beyond a frame and the audio's padding, and
// frames keep coming at every pass boundary. The plan of a run alone: relay-plan.test.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeMedia } from "../helpers/ffmpeg-source.js";
import { liveRooms } from "../helpers/http.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type FrameInfo } from "../helpers/whep-client.js";
import { auth, KEY } from "./relay-bodies.js";

const need = requireOrSkip("ffmpeg", "ffprobe");
const FPS = 25;
const FRAME_TICKS = 90_000 / FPS;
/** An encoded clip's audio runs past its video by up to an AAC frame's padding: the pass ends with the longer. */
const TOLERANCE_MS = 60;
/** A pause in frames that counts as a stall: generous under load (an FFmpeg restart at a pass pauses 0.3-0.9 s). */
const STALL_MS = 400;

describe.skipIf(!need.ok)(need.title("relay loops without a seam"), () => {
  let server: TestServer;
  let media: string;
  let stateDir: string;

  beforeAll(async () => {
    media = mkdtempSync(path.join(tmpdir(), "relay-seamless-media-"));
    stateDir = mkdtempSync(path.join(tmpdir(), "relay-seamless-state-"));
    await makeMedia(path.join(media, "clip.mp4"), [
      "-f", "lavfi", "-i", `testsrc2=size=320x240:rate=${FPS}`,
      "-f", "lavfi", "-i", "sine=sample_rate=48000",
      "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", String(FPS), "-pix_fmt", "yuv420p", "-c:a", "aac",
    ]);
    server = await startServer({ MEDIA_DIR: media, RELAY_KEY: KEY, RELAY_STATE_FILE: path.join(stateDir, "relay.json"), LOG_LEVEL: "warn" });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(media, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  const task = async (id: string) => (await (await fetch(`${server.url}/api/relay/${encodeURIComponent(id)}?${auth()}`)).json()) as { state: string };

  it("three passes of a 3 s clip reach a viewer as one stream: sequence numbers without a gap, timestamps a frame apart, no stall", async () => {
    const body = { cmd: "1", type: "video", list: [{ id: "seamless", src: [{ url: "clip.mp4" }], forward: [{ url: "room:loop" }], extendParam: { loop: "3" } }] };
    const res = await fetch(`${server.url}/api/relay?${auth()}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    await expect.poll(() => liveRooms(server.url), { timeout: 10_000 }).toContain("loop");
    const { client } = await playStream(server.whepUrl("loop"), { video: [{ codec: "H264", profileLevelId: "42e01f" }] });
    try {
      const frames: FrameInfo[] = [];
      client.onFrame((f) => {
        if (f.kind === "video") frames.push(f);
      });
      await client.waitForKeyframes(1, 15_000);
      await expect.poll(async () => (await task("seamless")).state, { timeout: 30_000, interval: 250 }).toBe("finished");
      // The viewer joined within the first pass: what it saw spans both pass boundaries.
      const seen = frames.filter((f) => f.complete);
      expect(seen.length).toBeGreaterThan(5.5 * FPS);
      let worstTicks = 0;
      let worstGapMs = 0;
      for (let i = 1; i < seen.length; i++) {
        worstTicks = Math.max(worstTicks, (seen[i]!.timestamp - seen[i - 1]!.timestamp) >>> 0);
        worstGapMs = Math.max(worstGapMs, seen[i]!.at - seen[i - 1]!.at);
      }
      expect(worstTicks).toBeLessThanOrEqual(FRAME_TICKS + (TOLERANCE_MS * 90_000) / 1000);
      expect(worstGapMs).toBeLessThan(STALL_MS);
      expect(client.video.sequenceGaps).toBe(0);
      expect(client.audio.sequenceGaps).toBe(0);
    } finally {
      await client.close();
    }
  }, 60_000);
});
