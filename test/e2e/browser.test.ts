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
      let last = first.framesDecoded;
      for (let i = 0; i < 10; i++) {
        await viewer.page.waitForTimeout(1000);
        const now = (await state(viewer.page)).framesDecoded;
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
});
