// Player statistics (docs/api.md, "Player statistics"): POST /api/whep/session/{id}/stats through
// the wire, status for status, and the bundled player in real Chromium whose reports arrive on
// /metrics while it plays a room published from FFmpeg.
import { readFileSync } from "node:fs";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, type LaunchedChromium } from "../helpers/chromium.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8").replace(/\r?\n/g, "\r\n");
const publishOffer = fixture("chrome-publish.sdp");
const playOffer = fixture("chrome-offer.sdp");

const sdpPost = (url: string, body: string) => fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp" }, body });
const report = (server: TestServer, location: string, body: unknown, type = "application/json") =>
  fetch(`${server.url}${location}/stats`, {
    method: "POST",
    headers: { "Content-Type": type, Origin: "https://player.example" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

async function expectError(res: Response, status: number, message: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(await res.json()).toEqual({ error: message });
}

/** Sample lines of /metrics by name prefix, as name{labels} -> value. */
async function metrics(server: TestServer): Promise<Map<string, number>> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe("POST /api/whep/session/{id}/stats through the wire", () => {
  let server: TestServer;
  let whip: string;
  let whep: string;
  const room = "reports";

  beforeAll(async () => {
    server = await startServer();
    // SDP only: ICE never completes, which is enough to hold a room and a viewer session.
    const pub = await sdpPost(server.whipUrl(room), publishOffer);
    expect(pub.status).toBe(201);
    whip = pub.headers.get("location")!;
    const sub = await sdpPost(server.whepUrl(room), playOffer);
    expect(sub.status).toBe(201);
    whep = sub.headers.get("location")!;
  });
  afterAll(() => server.close());

  it("404 for an unknown session and for a WHIP session's id; 405 for other methods", async () => {
    await expectError(await report(server, "/api/whep/session/nope", { framesDecoded: 1 }), 404, "session not found");
    await expectError(await report(server, whip.replace("/whip/", "/whep/"), { framesDecoded: 1 }), 404, "session not found");
    // Even a broken body: the session is checked first.
    await expectError(await report(server, "/api/whep/session/nope", "{"), 404, "session not found");
    expect((await report(server, whip, { framesDecoded: 1 })).status).toBe(404);
    const get = await fetch(`${server.url}${whep}/stats`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST, OPTIONS");
  });

  it("400 invalid request body for unknown or out-of-range fields and broken JSON; 415 for another type", async () => {
    // A fresh viewer: its rate limit is its own.
    const location = (await sdpPost(server.whepUrl(room), playOffer)).headers.get("location")!;
    await expectError(await report(server, location, { framesDecoded: 1, bitrate: 5 }), 400, "invalid request body");
    await expectError(await report(server, location, { roundTripTime: 120 }), 400, "invalid request body");
    await expectError(await report(server, location, "{"), 400, "invalid request body");
    await fetch(server.url + location, { method: "DELETE" });
    // Refused requests count against the session's rate too: another viewer for the last one.
    const other = (await sdpPost(server.whepUrl(room), playOffer)).headers.get("location")!;
    await expectError(await report(server, other, { framesDecoded: 1 }, "application/x-www-form-urlencoded"), 415, "unsupported media type");
    // text/plain is read as a string, which is no report.
    await expectError(await report(server, other, { framesDecoded: 1 }, "text/plain"), 400, "invalid request body");
    await fetch(server.url + other, { method: "DELETE" });
    await expectError(await report(server, location, { framesDecoded: 1 }), 404, "session not found");
  });

  it("204 with CORS; three reports in a burst, then 429 with Retry-After", async () => {
    const location = (await sdpPost(server.whepUrl(room), playOffer)).headers.get("location")!;
    const first = await report(server, location, { framesDecoded: 10 });
    expect(first.status).toBe(204);
    expect(first.headers.get("access-control-allow-origin")).toBe("*");
    expect((await report(server, location, { framesDecoded: 20 })).status).toBe(204);
    expect((await report(server, location, { framesDecoded: 30 })).status).toBe(204);
    const over = await report(server, location, { framesDecoded: 40 });
    await expectError(over, 429, "too many requests");
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Another viewer is not held back by this one.
    expect((await report(server, whep, { framesDecoded: 5 })).status).toBe(204);
    await fetch(server.url + location, { method: "DELETE" });
  });

  it("reports become room series and histograms; a viewer frozen over 2 s gets a keyframe request", async () => {
    const name = "frozen";
    expect((await sdpPost(server.whipUrl(name), publishOffer)).status).toBe(201);
    const location = (await sdpPost(server.whepUrl(name), playOffer)).headers.get("location")!;
    const base = { freezeCount: 1, totalFreezesDuration: 0.4, framesDropped: 2, packetsReceived: 990, packetsLost: 10, roundTripTime: 0.02, frameHeight: 240 };
    expect((await report(server, location, { ...base, framesDecoded: 300 })).status).toBe(204);
    let m = await metrics(server);
    expect(m.get(`live_player_reports_total{room="${name}"}`)).toBe(1);
    expect(m.get(`live_player_frames_decoded_total{room="${name}"}`)).toBe(300);
    expect(m.get(`live_player_frames_dropped_total{room="${name}"}`)).toBe(2);
    expect(m.get(`live_player_freezes_total{room="${name}"}`)).toBe(1);
    expect(m.get(`live_player_viewers_reporting{room="${name}"}`)).toBe(1);
    expect(m.get(`live_player_viewers_frozen{room="${name}"}`)).toBe(0);
    expect(m.get(`live_player_keyframe_requests_total{room="${name}"}`)).toBe(0);
    expect(m.get("live_player_rtt_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(m.get("live_player_packet_loss_ratio_count")).toBeGreaterThanOrEqual(1);
    expect(m.get("live_player_freeze_duration_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(m.get(`live_player_frame_height_pixels_bucket{le="240"}`)).toBeGreaterThanOrEqual(1);
    // Frames stand still and the player says so for 3 s: frozen now, and a keyframe is asked for.
    expect((await report(server, location, { ...base, framesDecoded: 300, frozenSeconds: 3 })).status).toBe(204);
    m = await metrics(server);
    expect(m.get(`live_player_viewers_frozen{room="${name}"}`)).toBe(1);
    expect(m.get(`live_player_keyframe_requests_total{room="${name}"}`)).toBe(1);
    expect(m.get(`live_keyframe_requests_sent_total{room="${name}"}`)).toBeGreaterThanOrEqual(1);
    // No report kept beyond the session: the room's series go with the room.
    await fetch(server.url + location, { method: "DELETE" });
    m = await metrics(server);
    expect(m.get(`live_player_viewers_reporting{room="${name}"}`)).toBe(0);
    await server.core.rooms.closeRoom(name, "admin-close");
    m = await metrics(server);
    expect([...m.keys()].some((k) => k.includes(`room="${name}"`))).toBe(false);
  });
});

const need = requireOrSkip("chromium", "ffmpeg");

describe.skipIf(!need.ok)(need.title("the bundled player's reports in Chromium"), () => {
  let browser: LaunchedChromium;
  let server: TestServer;
  let publisher: WhipClient | undefined;
  let page: Page | undefined;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await page?.close().catch(() => undefined);
    await browser?.close();
    await publisher?.close();
    await server?.close();
  });

  it("play.html posts getStats() summaries to its session; they arrive on /metrics", async () => {
    const room = "player-stats";
    publisher = (
      await publishTestStream(server.whipUrl(room), { video: { codec: "VP8" }, audio: true, source: { width: 320, height: 240, bitrateKbps: 400, gop: 30 } })
    ).client;
    page = await browser.newPage();
    const posted: string[] = [];
    page.on("request", (r) => {
      if (r.method() === "POST" && r.url().endsWith("/stats")) posted.push(r.url());
    });
    await page.goto(`${server.url}/play.html?room=${room}`);
    await page.waitForFunction(`window.__state.framesDecoded > 0 && window.__state.reportsAccepted >= 2`, undefined, { timeout: 30_000 });
    const state = (await page.evaluate(() => (window as unknown as { __state: Record<string, unknown> }).__state)) as { resource: string };
    // The reports go to the session resource the WHEP answer named.
    expect(posted.length).toBeGreaterThanOrEqual(2);
    expect(new Set(posted)).toEqual(new Set([`${state.resource}/stats`]));

    const m = await metrics(server);
    expect(m.get(`live_player_reports_total{room="${room}"}`)).toBeGreaterThanOrEqual(2);
    expect(m.get(`live_player_frames_decoded_total{room="${room}"}`)).toBeGreaterThan(0);
    expect(m.get(`live_player_viewers_reporting{room="${room}"}`)).toBe(1);
    expect(m.get(`live_player_viewers_frozen{room="${room}"}`)).toBe(0);
    expect(m.get("live_player_rtt_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(m.get("live_player_jitter_buffer_delay_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(m.get(`live_player_frame_height_pixels_bucket{le="240"}`)).toBeGreaterThanOrEqual(1);
    expect(m.get(`live_rtp_sent_bytes_total{room="${room}"}`)).toBeGreaterThan(0);
    expect(m.get(`live_rtp_sent_packets_total{room="${room}"}`)).toBeGreaterThan(0);

    // Stopping ends the session and its reports.
    await page.click("#stop");
    await page.waitForFunction(`window.__state.status === "stopped"`);
    const before = posted.length;
    await page.waitForTimeout(2500);
    expect(posted.length).toBe(before);
  });
});
