// Real Chromium (Debian's, driven by playwright-core) against the real server: the publish page
// sends the fake camera and microphone over WHIP, the play page receives over WHEP. Every number
// asserted comes from the pages' own getStats().
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, type LaunchedChromium } from "../helpers/chromium.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { installIceHelpers, type PageIceHelpers } from "../helpers/page-ice.js";
import { publishTestStream } from "../helpers/whip-client.js";

interface PageState {
  status: string;
  error: string;
  framesDecoded: number;
  width: number;
  height: number;
  audioPacketsReceived: number;
  codec: string;
}

const need = requireOrSkip("chromium");
const ARTIFACTS = path.resolve("test-artifacts");

const state = (page: Page) => page.evaluate(() => (window as unknown as { __state: PageState }).__state);
const waitState = (page: Page, fn: string, timeout = 15_000) =>
  page.waitForFunction(`(() => { const s = window.__state; return ${fn}; })()`, undefined, { timeout });

async function rooms(server: TestServer): Promise<{ name: string; subscribers: number }[]> {
  return (await (await fetch(`${server.url}/api/rooms`)).json()) as { name: string; subscribers: number }[];
}

describe.skipIf(!need.ok)(need.title("Chromium publishes and plays through the pages"), () => {
  let server: TestServer;
  let browser: LaunchedChromium;
  beforeAll(async () => {
    server = await startServer();
    browser = await launchChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function publish(room: string, codec: string): Promise<Page> {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${server.url}/publish.html?room=${room}`);
    await page.selectOption("#codec", codec);
    // 360p keeps two software encoders and decoders within this machine's two cores.
    await page.selectOption("#resolution", "360");
    await page.click("#start");
    await waitState(page, `s.status === "live"`);
    return page;
  }

  async function play(room: string): Promise<{ page: Page }> {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${server.url}/play.html?room=${room}`);
    return { page };
  }

  for (const codec of ["VP8", "H264"]) {
    it(`${codec}: frames decode at the published size, audio arrives, no freeze over 10 s, a late joiner starts within 1 s, DELETE ends the session`, async () => {
      const room = `browser-${codec}`;
      const publisher = await publish(room, `video/${codec}`);
      const viewer = await play(room);
      await waitState(viewer.page, `s.status === "live" && s.framesDecoded > 0`);
      const first = await state(viewer.page);
      expect(first.codec.toUpperCase()).toBe(codec);

      // No freeze: framesDecoded advances in every one of ten 1 s windows (a frozen picture is
      // one that stops; a busy CI machine may still lower the rate).
      // Read from the video element itself: the page's own stats refresh only once a second.
      const shown = () => viewer.page.evaluate(() => (document.querySelector("video") as HTMLVideoElement).getVideoPlaybackQuality().totalVideoFrames);
      let last = await shown();
      for (let i = 0; i < 10; i++) {
        await viewer.page.waitForTimeout(1000);
        const now = await shown();
        expect(now, `frames decoded stalled in second ${i + 1}`).toBeGreaterThan(last);
        last = now;
      }
      const s = await state(viewer.page);
      expect(s.width).toBeGreaterThanOrEqual(320);
      expect(s.height).toBeGreaterThanOrEqual(180);
      expect(s.audioPacketsReceived).toBeGreaterThan(200);

      // A late joiner: the server asks the browser for a keyframe, which it sends at once.
      // Measured in the page: ms from navigation start (page load, WHEP, ICE, DTLS included) to
      // the video element's first decoded frame.
      const late = await play(room);
      const lateMs = await late.page.evaluate(
        () =>
          new Promise<number>((resolve) => {
            const v = document.querySelector("video") as HTMLVideoElement;
            if (v.readyState >= 2) resolve(performance.now());
            else v.addEventListener("loadeddata", () => resolve(performance.now()), { once: true });
          }),
      );
      expect(lateMs, "late joiner's first decoded frame").toBeLessThan(1000);
      expect((await rooms(server)).find((r) => r.name === room)?.subscribers).toBe(2);

      await viewer.page.screenshot({ path: path.join(ARTIFACTS, `play-${codec}-1280x800.png`) });
      await publisher.screenshot({ path: path.join(ARTIFACTS, `publish-${codec}-1280x800.png`) });

      // Stop on the play page sends DELETE: the server drops that subscriber at once.
      await late.page.click("#stop");
      await expect.poll(async () => (await rooms(server)).find((r) => r.name === room)?.subscribers, { timeout: 5000 }).toBe(1);
      // Stop on the publish page ends the room.
      await publisher.click("#stop");
      await expect.poll(async () => (await rooms(server)).find((r) => r.name === room), { timeout: 5000 }).toBeUndefined();
      await Promise.all([publisher.close(), viewer.page.close(), late.page.close()]);
    }, 60_000);
  }

  it("ICE restart from the browser (PATCH If-Match: *) keeps media flowing after the restart", async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/healthz`);
    await page.evaluate(installIceHelpers);
    // A bare WHIP client written the way RFC 9725 §4.4.2 describes, in the page itself.
    const result = await page.evaluate(async (base) => {
      const { __gathered: gathered, __iceRestart: iceRestart } = window as unknown as PageIceHelpers;
      const packets = async () => Number(/live_rtp_packets_total\{room="restart"\} (\d+)/.exec(await (await fetch(`${base}/metrics`)).text())?.[1] ?? 0);
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });
      const pc = new RTCPeerConnection();
      pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const res = await fetch(`${base}/api/whip/publish/restart`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription?.sdp,
      });
      const location = res.headers.get("location") ?? "";
      const etag = res.headers.get("etag");
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
      await new Promise((r) => setTimeout(r, 1500));

      const restart = await iceRestart(pc, base + location);
      await new Promise((r) => setTimeout(r, 1000));
      const before = await packets();
      await new Promise((r) => setTimeout(r, 2000));
      const after = await packets();
      const localUfrag = /a=ice-ufrag:(\S+)/.exec(pc.localDescription?.sdp ?? "")?.[1];
      await fetch(base + location, { method: "DELETE" });
      pc.close();
      return { status: restart.status, etag, newEtag: restart.etag, ufrag: restart.ufrag, before, after, ice: pc.iceConnectionState, localUfrag };
    }, server.url);
    await page.close();
    expect(result.status).toBe(200);
    expect(result.newEtag).not.toBe(result.etag);
    expect(result.newEtag).toBe(`"${result.ufrag}"`);
    expect(result.after - result.before, "packets forwarded in the 2 s after the restart").toBeGreaterThan(20);
  }, 30_000);

  it("a viewer WHEP refuses (no codec in common) falls back to the room's HLS through hls.js", { timeout: 90_000 }, async () => {
    const hlsServer = await startServer({ HLS_ENABLED: "true" });
    const { client: publisher } = await publishTestStream(hlsServer.whipUrl("fallback"), { video: { codec: "H264" }, audio: true });
    try {
      // The playlist exists once the first segments are written.
      await expect.poll(async () => (await fetch(`${hlsServer.url}/hls/fallback/stream.m3u8`)).status, { timeout: 20_000, interval: 500 }).toBe(200);
      const page = await browser.newPage();
      // This browser "cannot" receive H.264: WHEP answers 422.
      await page.addInitScript(() => {
        const add = RTCPeerConnection.prototype.addTransceiver;
        RTCPeerConnection.prototype.addTransceiver = function (this: RTCPeerConnection, ...args: Parameters<typeof add>) {
          const t = add.apply(this, args);
          if (t.receiver.track.kind === "video") {
            t.setCodecPreferences((RTCRtpReceiver.getCapabilities("video")?.codecs ?? []).filter((c) => !/h264/i.test(c.mimeType)));
          }
          return t;
        };
      });
      await page.goto(`${hlsServer.url}/play.html?room=fallback`);
      await waitState(page, `s.mode === "hls" && s.status === "live"`, 15_000);
      // Playing: the element advances through the stream (a busy CI machine may take a few segments).
      await expect.poll(() => page.evaluate(() => (document.querySelector("video") as HTMLVideoElement).currentTime), { timeout: 30_000 }).toBeGreaterThan(1);
      expect((await state(page)).error).toMatch(/HLS/);
      await page.close();
    } finally {
      await publisher.close();
      await hlsServer.close();
    }
  });
});
