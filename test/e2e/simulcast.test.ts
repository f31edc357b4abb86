// Simulcast from a real Chromium (RFC 8853): the WHIP answer receives every layer, the server
// forwards the best one arriving, and when the sender turns that layer off or on again, viewers
// move to another at its keyframe without a gap in what they receive.
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, type LaunchedChromium } from "../helpers/chromium.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { WhepClient, type FrameInfo } from "../helpers/whep-client.js";

interface Layer {
  rid: string;
  active: boolean;
  forwarded: boolean;
  bitrate: number;
}

const chromium = requireOrSkip("chromium");

async function layers(server: TestServer, room: string): Promise<Layer[]> {
  const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as { name: string; layers?: Layer[] }[];
  return rooms.find((r) => r.name === room)?.layers ?? [];
}

const forwarded = async (server: TestServer, room: string) => (await layers(server, room)).find((l) => l.forwarded)?.rid;

/** Turns one of the page's encodings on or off, as an app does when it saves upload bandwidth. */
function setActive(page: Page, rid: string, active: boolean): Promise<void> {
  return page.evaluate(
    async ([rid, active]) => {
      const sender = (window as unknown as { sender: RTCRtpSender }).sender;
      const params = sender.getParameters();
      for (const e of params.encodings) if (e.rid === rid) e.active = active;
      await sender.setParameters(params);
    },
    [rid, active] as const,
  );
}

describe.skipIf(!chromium.ok)(chromium.title("Chromium publishing simulcast h;m;l"), () => {
  let server: TestServer;
  let browser: LaunchedChromium;
  beforeAll(async () => {
    server = await startServer();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("forwards the full-size layer, moves down at a keyframe when it is turned off and back up when it returns, with no gap at the viewer", async () => {
    const room = "simulcast";
    const page = await browser.newPage();
    // Any page of the server: an http://127.0.0.1 origin is a secure context, and the POST is same-origin.
    await page.goto(`${server.url}/api/bootstrap`);
    const sent = await page.evaluate(async (url: string) => {
      // 640x360: Chromium sends two of the three layers at this size (h 640x360, m 320x180).
      const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false });
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      const transceiver = pc.addTransceiver(media.getVideoTracks()[0], {
        direction: "sendonly",
        sendEncodings: [{ rid: "h" }, { rid: "m", scaleResolutionDownBy: 2 }, { rid: "l", scaleResolutionDownBy: 4 }],
      });
      transceiver.setCodecPreferences(RTCRtpSender.getCapabilities("video")!.codecs.filter((c) => /vp8|rtx/i.test(c.mimeType)));
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise<void>((resolve) => {
        if (pc.iceGatheringState === "complete") resolve();
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
        setTimeout(resolve, 3000);
      });
      const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription!.sdp });
      const answer = await res.text();
      if (res.status !== 201) return { status: res.status, answer, encodings: [] as string[] };
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      Object.assign(window, { pc, sender: transceiver.sender });
      return { status: res.status, answer, encodings: transceiver.sender.getParameters().encodings.map((e) => e.rid ?? "-") };
    }, server.whipUrl(room));
    expect(sent.status, sent.answer).toBe(201);
    expect(sent.answer).toMatch(/\r\na=simulcast:recv h;m;l\r\n/);
    // Chromium keeps all three encodings once the answer accepts them.
    expect(sent.encodings).toEqual(["h", "m", "l"]);

    const viewer = new WhepClient({ video: ["VP8"], audio: false });
    // The longest time between two frames the viewer completed, over the whole test.
    let longestGap = 0;
    let lastFrameAt = 0;
    viewer.onFrame((f: FrameInfo) => {
      if (lastFrameAt > 0) longestGap = Math.max(longestGap, f.at - lastFrameAt);
      lastFrameAt = f.at;
    });
    try {
      await viewer.play(server.whepUrl(room));
      await viewer.waitForKeyframes(1, 15_000);
      await expect.poll(() => forwarded(server, room), { timeout: 15_000 }).toBe("h");
      await expect.poll(() => viewer.video.latestSize, { timeout: 5_000 }).toEqual({ width: 640, height: 360 });
      const both = await layers(server, room);
      expect(
        both
          .filter((l) => l.active)
          .map((l) => l.rid)
          .sort(),
      ).toEqual(["h", "m"]);

      // Turned off, h stops arriving: the next keyframe of m continues the stream.
      longestGap = 0;
      await setActive(page, "h", false);
      await expect.poll(() => forwarded(server, room), { timeout: 5_000 }).toBe("m");
      await expect.poll(() => viewer.video.latestSize, { timeout: 5_000 }).toEqual({ width: 320, height: 180 });
      const framesAtM = viewer.video.frames;
      await viewer.waitForFrames(framesAtM + 20, 10_000);
      expect(longestGap, "longest time between frames while h went away (ms)").toBeLessThan(2000);

      // Back on, h is the better layer again: up at its keyframe.
      longestGap = 0;
      await setActive(page, "h", true);
      await expect.poll(() => forwarded(server, room), { timeout: 10_000 }).toBe("h");
      await expect.poll(() => viewer.video.latestSize, { timeout: 5_000 }).toEqual({ width: 640, height: 360 });
      await viewer.waitForFrames(viewer.video.frames + 20, 10_000);
      expect(longestGap, "longest time between frames while moving up (ms)").toBeLessThan(1000);

      // One continuous stream: each switch carried sequence numbers on, nothing looks lost.
      expect(viewer.video.sequenceGaps).toBe(0);
      expect(viewer.video.ssrc).toBeDefined();
    } finally {
      await viewer.close();
      await page.close();
    }
  }, 90_000);
});
