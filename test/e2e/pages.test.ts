// The four pages in real Chromium against the real server: the rooms page follows a room that the
// publish page starts and the play page joins, and closes it with the admin token; every error a
// page can meet is shown as its plain sentence in #error; a recorded session plays on the
// recordings page; and each page is photographed at desktop and phone size (test-artifacts/).
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, launchChromium, type LaunchedChromium } from "../helpers/chromium.js";
import { chromiumPath, requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";

const need = requireOrSkip("chromium", "ffmpeg");
const ARTIFACTS = path.resolve("test-artifacts");
const ADMIN = "admin-secret";
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

interface RoomInfo {
  name: string;
  hasPublisher: boolean;
  subscribers: number;
}

const waitState = (page: Page, fn: string, timeout = 15_000) =>
  page.waitForFunction(`(() => { const s = window.__state; return ${fn}; })()`, undefined, { timeout });
const stateOf = <T = Record<string, unknown>>(page: Page) => page.evaluate(() => (window as unknown as { __state: unknown }).__state) as Promise<T>;
const errorText = async (page: Page) => ((await page.locator("#error").isVisible()) ? (await page.locator("#error").textContent())?.trim() : "");

/** The page's #error shows `sentence` (exactly, or matching it), and the state says the same. */
async function expectSentence(page: Page, sentence: string | RegExp, timeout = 15_000): Promise<void> {
  const test = typeof sentence === "string" ? `s.error === ${JSON.stringify(sentence)}` : `${sentence.toString()}.test(s.error)`;
  await waitState(page, test, timeout).catch(async () => {
    throw new Error(`#error never became ${String(sentence)}; state: ${JSON.stringify(await stateOf(page))}`);
  });
  const shown = await errorText(page);
  if (typeof sentence === "string") expect(shown).toBe(sentence);
  else expect(shown).toMatch(sentence);
}

async function rooms(server: TestServer): Promise<RoomInfo[]> {
  return (await (await fetch(`${server.url}/api/rooms`)).json()) as RoomInfo[];
}

/** A screenshot at desktop and at phone size; the page is left at desktop size. */
async function shoot(page: Page, name: string): Promise<void> {
  await page.bringToFront();
  for (const size of [DESKTOP, PHONE]) {
    await page.setViewportSize(size);
    await page.waitForTimeout(150);
    await page.screenshot({ path: path.join(ARTIFACTS, `page-${name}-${size.width}x${size.height}.png`) });
  }
  await page.setViewportSize(DESKTOP);
}

describe.skipIf(!need.ok)(need.title("the pages in Chromium: rooms, errors, recordings, phone layout"), () => {
  let browser: LaunchedChromium;
  let server: TestServer;
  const pages: Page[] = [];
  const servers: TestServer[] = [];
  const browsers: Browser[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    [browser, server] = await Promise.all([launchChromium(), startServer({ ADMIN_TOKEN: ADMIN, RECORD_ENABLED: "true", MAX_SUBS_PER_ROOM: "1" })]);
    servers.push(server);
  });

  afterAll(async () => {
    await Promise.allSettled(pages.map((p) => p.close()));
    await Promise.allSettled(browsers.map((b) => b.close()));
    await browser?.close();
    await Promise.allSettled(servers.map((s) => s.close()));
    for (const s of servers) s.removeRecordDir();
  });

  async function open(url: string, init?: () => void): Promise<Page> {
    const page = await browser.newPage();
    pages.push(page);
    await page.setViewportSize(DESKTOP);
    if (init) await page.addInitScript(init);
    await page.goto(url);
    return page;
  }

  async function startPublishing(page: Page, codec: string): Promise<void> {
    await page.selectOption("#codec", codec);
    // 360p keeps the software encoder and decoders within this machine's two cores.
    await page.selectOption("#resolution", "360");
    await page.click("#start");
  }

  it("the rooms page lists a room the publish page starts, counts its viewer, and closes it with the admin token; 403, 409 and 422 are shown as sentences", async () => {
    const room = "lobby";
    const publisher = await open(`${server.url}/publish.html?room=${room}`);
    await startPublishing(publisher, "video/H264");
    await waitState(publisher, `s.status === "live"`);

    const dashboard = await open(`${server.url}/`);
    await waitState(dashboard, `s.rooms.some((r) => r.name === "${room}" && r.hasPublisher)`);
    const card = dashboard.locator(`article[data-room="${room}"]`);
    await expect.poll(() => card.locator(".pill").textContent()).toBe("live");

    // 422: a viewer whose browser offers every video codec but H.264 cannot receive this room.
    const noH264 = await open(`${server.url}/play.html?room=${room}`, () => {
      const add = RTCPeerConnection.prototype.addTransceiver;
      RTCPeerConnection.prototype.addTransceiver = function (this: RTCPeerConnection, ...args: Parameters<typeof add>) {
        const t = add.apply(this, args);
        if (t.receiver.track.kind === "video") {
          const codecs = RTCRtpReceiver.getCapabilities("video")?.codecs ?? [];
          t.setCodecPreferences(codecs.filter((c) => !/h264/i.test(c.mimeType)));
        }
        return t;
      };
    });
    await expectSentence(noH264, /^Offer cannot receive the publisher's codec: H264\b.*\.$/);
    expect((await stateOf<{ status: string }>(noH264)).status).toBe("error");
    await noH264.close();

    // One viewer: the dashboard shows it.
    const viewer = await open(`${server.url}/play.html?room=${room}`);
    await waitState(viewer, `s.status === "live" && s.framesDecoded > 0`);
    await waitState(dashboard, `s.rooms.some((r) => r.name === "${room}" && r.subscribers === 1)`, 6000);
    await expect.poll(() => card.locator(".subs b").textContent()).toBe("1");

    // 403: MAX_SUBS_PER_ROOM=1, so a second viewer is turned away.
    const second = await open(`${server.url}/play.html?room=${room}`);
    await expectSentence(second, "The room is full.");
    await second.close();

    // 409: a second publisher for the same room.
    const rival = await open(`${server.url}/publish.html?room=${room}`);
    await startPublishing(rival, "video/VP8");
    await expectSentence(rival, "Someone is already publishing in this room.");
    expect((await stateOf<{ status: string }>(rival)).status).toBe("error");
    await rival.close();

    await shoot(dashboard, "rooms");
    await shoot(publisher, "publish");
    await shoot(viewer, "play");

    // No Close buttons without the admin token; typing it shows them, and Close ends the room.
    // (Tabs in the background get no animation frames, which Playwright's clicks wait for.)
    await dashboard.bringToFront();
    expect(await card.locator(".close-room").count()).toBe(0);
    await dashboard.fill("#admin-token", ADMIN);
    await card.locator(".close-room").click();
    await waitState(publisher, `s.status !== "live"`, 15_000);
    await expect.poll(() => rooms(server), { timeout: 5000 }).toEqual([]);
    await waitState(dashboard, `s.rooms.length === 0`, 6000);
    expect((await stateOf<{ closeError: string }>(dashboard)).closeError).toBe("");
    await viewer.close();
  }, 60_000);

  it("the session just recorded plays on the recordings page: the video's currentTime advances", async () => {
    // The merge of the session above (H.264 + Opus → MP4) appears once FFmpeg is done.
    await expect
      .poll(
        async () => {
          const list = (await (await fetch(`${server.url}/api/records`)).json()) as { name: string; playback?: string }[];
          return list.find((r) => r.name.startsWith("lobby_") && r.playback)?.playback;
        },
        { timeout: 15_000, interval: 250 },
      )
      .toMatch(/^\/records\/lobby_\d+\.mp4$/);

    // A token in the URL is kept for the tab; media elements get it as ?token= (this server
    // has auth off, so it is carried but not checked).
    const page = await open(`${server.url}/records.html?token=t0k`);
    await waitState(page, `s.status === "ok" && s.records.some((r) => r.playback)`);
    // One Play button per session (three files, one merged file).
    expect(await page.locator("button.play").count()).toBe(1);
    await page.click("button.play");
    await waitState(page, `/^lobby_\\d+\\.mp4$/.test(s.playing) && s.currentTime > 0.3`, 15_000);
    expect(await page.evaluate(() => (document.querySelector("#player") as HTMLVideoElement).src)).toMatch(/\/records\/lobby_\d+\.mp4\?token=t0k$/);
    const t1 = await page.evaluate(() => (document.querySelector("#player") as HTMLVideoElement).currentTime);
    await page.waitForTimeout(800);
    const video = await page.evaluate(() => {
      const v = document.querySelector("#player") as HTMLVideoElement;
      return { currentTime: v.currentTime, width: v.videoWidth, error: v.error?.code ?? null };
    });
    expect(video.error).toBeNull();
    expect(video.currentTime).toBeGreaterThan(t1);
    expect(video.width).toBeGreaterThan(0);
    expect((await stateOf<{ currentTime: number }>(page)).currentTime).toBeGreaterThan(0);
    await shoot(page, "records");
  }, 40_000);

  it("404, 401, 429 and a denied camera each show their plain sentence", async () => {
    // 404: nobody publishes in the room, so the play page waits (and keeps retrying).
    const empty = await open(`${server.url}/play.html?room=nobody-here`);
    await expectSentence(empty, "Nobody is publishing in this room yet.");
    expect((await stateOf<{ status: string }>(empty)).status).toBe("waiting");

    // 401: the server wants a token and none is typed.
    const [authed, limited] = await Promise.all([
      startServer({ AUTH_TOKEN: "stream-secret" }),
      // 429: one request per 100 s; the page's bootstrap takes it, its WHEP offer is refused.
      startServer({ RATE_LIMIT_BURST: "1", RATE_LIMIT_RPS: "0.01" }),
    ]);
    servers.push(authed, limited);
    const noToken = await open(`${authed.url}/publish.html?room=locked`);
    await startPublishing(noToken, "video/VP8");
    await expectSentence(noToken, "This room needs a valid token.");
    expect(await noToken.locator("#token-row").isVisible()).toBe(true);

    const busy = await open(`${limited.url}/play.html?room=busy`);
    await expectSentence(busy, "Too many requests — wait a moment and try again.");

    // A denied camera: a Chromium without --use-fake-ui-for-media-stream, whose context grants
    // nothing, answers the page's getUserMedia with NotAllowedError.
    const strict = await chromium.launch({
      executablePath: chromiumPath(),
      args: CHROMIUM_ARGS.filter((a) => a !== "--use-fake-ui-for-media-stream"),
      env: { ...process.env, no_proxy: "127.0.0.1,localhost", NO_PROXY: "127.0.0.1,localhost" },
    });
    browsers.push(strict);
    const denied = await (await strict.newContext({ viewport: DESKTOP })).newPage();
    pages.push(denied);
    await denied.goto(`${server.url}/publish.html?room=denied`);
    await denied.click("#start");
    await expectSentence(denied, "Permission to use the camera, microphone or screen was denied. Allow it in the browser and try again.");
    expect((await stateOf<{ status: string }>(denied)).status).toBe("error");
    expect(await rooms(server)).toEqual([]);
  }, 40_000);
});
