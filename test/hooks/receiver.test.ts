// Receiving publish callbacks: SRS JSON and nginx-rtmp forms parsed alone, then end to end with a
// real nginx-rtmp calling the server on publish (a push to live/demo2 becomes room demo2, the end of
// the push ends it), SRS-format callbacks as SRS sends them (docs/hooks.md, "SRS callback receiver") against a stream on
// that nginx, hostile bodies answered non-zero with nothing started, a room with a WebRTC
// publisher refused, and the shared secret.
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dialectOf, parseNginxCallback, parseSrsCallback, pullUrl } from "../../src/hooks/receiver.js";
import { pidAlive, pushRtmp, stopChild } from "../helpers/ffmpeg-source.js";
import { liveRooms } from "../helpers/http.js";
import { sleep, waitFor } from "../helpers/net.js";
import { startNginxRtmp, type NginxRtmp } from "../helpers/nginx-rtmp.js";
import { PidWatch } from "../helpers/procfs.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type WhepClient } from "../helpers/whep-client.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";

/** An on_publish body as SRS sends it. */
const SRS_PUBLISH = {
  server_id: "vid-0xk989d",
  action: "on_publish",
  client_id: "341w361a",
  ip: "127.0.0.1",
  vhost: "__defaultVhost__",
  app: "live",
  tcUrl: "rtmp://127.0.0.1:1935/live?vhost=__defaultVhost__",
  stream: "livestream",
  param: "",
};

describe("callback parsing", () => {
  it("SRS on_publish: pull rtmp://<host of tcUrl>/<app>/<stream><param> into room <stream>", () => {
    expect(parseSrsCallback(JSON.stringify(SRS_PUBLISH))).toEqual({
      ok: true,
      event: { dialect: "srs", action: "publish", room: "livestream", url: "rtmp://127.0.0.1:1935/live/livestream", client: "341w361a" },
    });
    // A numeric client_id, a param with a token.
    const withParam = parseSrsCallback(
      JSON.stringify({
        action: "on_publish",
        client_id: 1985,
        ip: "192.168.1.10",
        vhost: "video.test.com",
        app: "live",
        stream: "livestream",
        param: "?token=xxx&salt=yyy",
        tcUrl: "rtmp://video.test.com/live",
      }),
    );
    expect(withParam).toMatchObject({ ok: true, event: { url: "rtmp://video.test.com/live/livestream?token=xxx&salt=yyy", client: "1985" } });
    expect(
      parseSrsCallback(
        JSON.stringify({ action: "on_unpublish", client_id: "9308h583", ip: "192.168.1.10", vhost: "video.test.com", app: "live", stream: "livestream" }),
      ),
    ).toEqual({
      ok: true,
      event: { dialect: "srs", action: "unpublish", room: "livestream", client: "9308h583" },
    });
  });

  it("SRS: malformed, unknown and hostile bodies are refused with a reason", () => {
    const bad = (body: unknown): string => {
      const r = parseSrsCallback(typeof body === "string" ? body : JSON.stringify(body));
      expect(r.ok).toBe(false);
      return (r as { reason: string }).reason;
    };
    expect(bad("{nope")).toBe("malformed JSON");
    expect(bad("[1]")).toBe("body is not a JSON object");
    expect(bad({ stream: "x" })).toBe("missing action");
    expect(bad({ ...SRS_PUBLISH, action: "on_play" })).toMatch(/unsupported action "on_play"/);
    for (const stream of ["../etc", "a/b", "x".repeat(65), "", "a b", "a%2fb", 7, null]) {
      expect(bad({ ...SRS_PUBLISH, stream })).toMatch(/invalid stream name/);
    }
    expect(bad({ ...SRS_PUBLISH, app: "../x" })).toMatch(/invalid app/);
    expect(bad({ ...SRS_PUBLISH, app: "live?x=1" })).toMatch(/invalid app/);
    expect(bad({ ...SRS_PUBLISH, tcUrl: "file:///etc/passwd" })).toMatch(/not an rtmp:\/\/ URL/);
    expect(bad({ ...SRS_PUBLISH, tcUrl: "http://127.0.0.1/live" })).toMatch(/not an rtmp:\/\/ URL/);
    // Credentials in tcUrl are not carried over: only its host is used.
    expect(parseSrsCallback(JSON.stringify({ ...SRS_PUBLISH, tcUrl: "rtmp://u:p@127.0.0.1/live" }))).toMatchObject({
      ok: true,
      event: { url: "rtmp://127.0.0.1/live/livestream" },
    });
    expect(bad({ ...SRS_PUBLISH, tcUrl: undefined })).toMatch(/tcUrl/);
    expect(bad({ ...SRS_PUBLISH, param: "?a b" })).toMatch(/invalid param/);
    expect(bad({ ...SRS_PUBLISH, param: "x=1" })).toMatch(/invalid param/);
    expect(bad({ ...SRS_PUBLISH, param: 5 })).toMatch(/param must be a string/);
  });

  it("nginx-rtmp forms: publish, publish_done, update_publish; other calls refused", () => {
    const form = (o: Record<string, string>) => new URLSearchParams(o);
    expect(
      parseNginxCallback(form({ call: "publish", app: "live", name: "demo2", addr: "127.0.0.1", tcurl: "rtmp://127.0.0.1:1935/live", clientid: "7" })),
    ).toEqual({
      ok: true,
      event: { dialect: "nginx-rtmp", action: "publish", room: "demo2", url: "rtmp://127.0.0.1:1935/live/demo2", client: "7" },
    });
    expect(parseNginxCallback(form({ call: "publish_done", app: "live", name: "demo2" }))).toMatchObject({
      ok: true,
      event: { action: "unpublish", room: "demo2" },
    });
    expect(parseNginxCallback(form({ call: "update_publish", name: "demo2" }))).toMatchObject({ ok: true, event: { action: "update" } });
    expect(parseNginxCallback(form({ call: "play", app: "live", name: "demo2" }))).toMatchObject({ ok: false, reason: 'unsupported call "play"' });
    expect(parseNginxCallback(form({ call: "publish", app: "live", name: "../x", tcurl: "rtmp://h/live" }))).toMatchObject({ ok: false });
  });

  it("pullUrl, dialects", () => {
    expect(pullUrl("rtmps://h.example:443/app?vhost=v", "app", "s")).toEqual({ url: "rtmps://h.example:443/app/s" });
    expect(pullUrl("rtmp://[::1]:1935/live", "live", "s")).toEqual({ url: "rtmp://[::1]:1935/live/s" });
    expect(dialectOf("application/x-www-form-urlencoded", "call=publish")).toBe("nginx-rtmp");
    expect(dialectOf("application/json", "{}")).toBe("srs");
    expect(dialectOf("application-json", "{}")).toBe("srs");
    expect(dialectOf(undefined, "{}")).toBe("srs");
  });
});

// ---- end to end -------------------------------------------------------------------------------

/**
 * nginx-rtmp whose application `live` calls the server on publish and publish done; application
 * `src` has no callbacks (a stream there is what an SRS would be serving).
 */
function startNginx(serverPort: number): Promise<NginxRtmp> {
  const cb = `http://127.0.0.1:${serverPort}/api/srs/callback`;
  return startNginxRtmp({ applications: { live: `on_publish ${cb}; on_publish_done ${cb};`, src: "" } });
}

async function callback(
  server: TestServer,
  body: string,
  contentType = "application/json",
  query = "",
  p = "/api/srs/callback",
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server.url}${p}${query}`, { method: "POST", headers: { "Content-Type": contentType }, body });
  return { status: res.status, text: await res.text() };
}

function view(server: TestServer, room: string): Promise<{ client: WhepClient }> {
  return playStream(server.whepUrl(room), { video: [{ codec: "H264", profileLevelId: "42e01f" }] });
}

const need = requireOrSkip("ffmpeg", "nginx-rtmp");

describe.skipIf(!need.ok)(need.title("publish callbacks from nginx-rtmp and SRS start and stop ingests"), () => {
  let server: TestServer;
  let nginx: NginxRtmp;
  const children: ChildProcess[] = [];
  const viewers: WhepClient[] = [];
  const publishers: WhipClient[] = [];
  let ffmpegPids: PidWatch;

  beforeAll(async () => {
    server = await startServer();
    nginx = await startNginx(Number(new URL(server.url).port));
    ffmpegPids = new PidWatch(() => server.core.bridges.supervisor.pids());
  });

  afterAll(async () => {
    ffmpegPids?.stop();
    await Promise.all([...viewers, ...publishers].map((c) => c.close()));
    await Promise.all(children.map((c) => stopChild(c)));
    await server?.close();
    await nginx?.stop();
    expect(pidAlive(nginx.pid)).toBe(false);
    for (const p of ffmpegPids?.seen ?? []) expect(pidAlive(p), `FFmpeg ${p} alive after close`).toBe(false);
  });

  it("nginx-rtmp on_publish: a push to live/demo2 becomes room demo2; the end of the push ends it", async () => {
    const t0 = performance.now();
    const pusher = pushRtmp(`rtmp://127.0.0.1:${nginx.port}/live/demo2`, { bFrames: 2, gop: 50 });
    children.push(pusher);
    await expect.poll(() => liveRooms(server.url), { timeout: 5000 }).toContain("demo2");
    expect(await liveRooms(server.url)).toEqual(["demo2"]);
    expect(server.core.ingests.get("demo2")).toMatchObject({ origin: "nginx-rtmp", url: `rtmp://127.0.0.1:${nginx.port}/live/demo2` });
    const { client } = await view(server, "demo2");
    viewers.push(client);
    await client.waitForKeyframes(1, 15_000);
    console.log(`[receiver] RTMP push start → first WHEP keyframe ${Math.round(performance.now() - t0)} ms`);
    await client.waitForFrames(25, 10_000);
    await client.waitForPackets(50, "audio", 10_000);
    expect(client.video.firstFrameWasKeyframe).toBe(true);
    const pid = server.core.ingests.job("demo2")!.pid!;
    // The encoder stops: nginx-rtmp says publish_done, the ingest stops, the room ends.
    const t1 = performance.now();
    await stopChild(pusher, "SIGTERM");
    await expect.poll(() => liveRooms(server.url), { timeout: 8000 }).not.toContain("demo2");
    console.log(`[receiver] push stopped → room ended ${Math.round(performance.now() - t1)} ms`);
    expect(await liveRooms(server.url)).toEqual([]);
    await waitFor(() => !pidAlive(pid), { timeoutMs: 3000, what: "the ingest FFmpeg to exit" });
    expect(server.core.bridges.supervisor.list("ingest")).toEqual([]);
  }, 45_000);

  it("SRS callbacks as SRS sends them pull a stream into a room and stop it", async () => {
    const publish = {
      ...SRS_PUBLISH,
      app: "src",
      stream: "srs1",
      tcUrl: `rtmp://127.0.0.1:${nginx.port}/src?vhost=__defaultVhost__`,
    };
    // SRS has been seen sending "Content-Type: application-json": accepted as JSON too.
    const res = await callback(server, JSON.stringify(publish), "application-json", "", "/api/v1/streams");
    expect(res).toEqual({ status: 200, text: "0" });
    expect(server.core.ingests.get("srs1")).toMatchObject({ origin: "srs", url: `rtmp://127.0.0.1:${nginx.port}/src/srs1` });
    // SRS calls on_publish before the stream can be played: the pull starts first, the media comes later.
    await sleep(1500);
    const pusher = pushRtmp(`rtmp://127.0.0.1:${nginx.port}/src/srs1`, { bFrames: 2, gop: 50 });
    children.push(pusher);
    const { client } = await view(server, "srs1");
    viewers.push(client);
    await client.waitForKeyframes(1, 15_000);
    await client.waitForPackets(30, "audio", 5000);
    // A repeated on_publish (an encoder that reconnected) replaces the callback's own ingest.
    const firstId = server.core.ingests.get("srs1")!.id;
    expect(await callback(server, JSON.stringify({ ...publish, client_id: "2" }))).toEqual({ status: 200, text: "0" });
    expect(server.core.ingests.get("srs1")!.id).not.toBe(firstId);
    const pid = await (async () => {
      await waitFor(() => server.core.ingests.job("srs1")?.pid !== undefined, { timeoutMs: 3000 });
      return server.core.ingests.job("srs1")!.pid!;
    })();
    const unpublish = { action: "on_unpublish", client_id: "341w361a", ip: "127.0.0.1", vhost: "__defaultVhost__", app: "src", stream: "srs1" };
    expect(await callback(server, JSON.stringify(unpublish))).toEqual({ status: 200, text: "0" });
    expect(await liveRooms(server.url)).not.toContain("srs1");
    expect(pidAlive(pid)).toBe(false);
    expect(server.core.ingests.get("srs1")).toBeUndefined();
    // Unpublish of a stream nobody ingests: still 0.
    expect(await callback(server, JSON.stringify(unpublish))).toEqual({ status: 200, text: "0" });
    await stopChild(pusher);
  }, 40_000);

  it("bad bodies get non-zero codes (403 for nginx-rtmp) and start nothing", async () => {
    const tcUrl = `rtmp://127.0.0.1:${nginx.port}/src`;
    const bodies = [
      "{nope",
      "",
      "null",
      JSON.stringify({ ...SRS_PUBLISH, action: "on_connect" }),
      JSON.stringify({ ...SRS_PUBLISH, action: "on_play" }),
      JSON.stringify({ ...SRS_PUBLISH, tcUrl, stream: "../../etc/passwd" }),
      JSON.stringify({ ...SRS_PUBLISH, tcUrl, stream: "a/b" }),
      JSON.stringify({ ...SRS_PUBLISH, tcUrl, stream: "s".repeat(65) }),
      JSON.stringify({ ...SRS_PUBLISH, tcUrl, stream: "ok", app: "../../x" }),
      JSON.stringify({ ...SRS_PUBLISH, tcUrl: "file:///etc/passwd", stream: "ok" }),
      JSON.stringify({ ...SRS_PUBLISH, tcUrl: "concat:a|b", stream: "ok" }),
      JSON.stringify({ ...SRS_PUBLISH, tcUrl, stream: "ok", param: "?x=1 -i /etc/passwd" }),
    ];
    for (const body of bodies) {
      const res = await callback(server, body);
      expect(res.status, body).toBe(200);
      expect(res.text, body).toMatch(/^[1-9]\d*$/);
    }
    const form = "application/x-www-form-urlencoded";
    for (const body of [
      "call=play&app=live&name=x",
      "call=publish&app=live&name=..%2Fx&tcurl=rtmp%3A%2F%2F127.0.0.1%2Flive",
      "call=publish&app=live&name=ok&tcurl=file%3A%2F%2F%2Fetc",
    ]) {
      const res = await callback(server, body, form);
      expect(res.status, body).toBe(403);
    }
    expect(server.core.bridges.supervisor.list("ingest")).toEqual([]);
    expect(await liveRooms(server.url)).toEqual([]);
  });

  it("a room with a WebRTC publisher refuses the callback and keeps its publisher", async () => {
    const { client } = await publishTestStream(server.whipUrl("busy"), { video: { codec: "VP8" } });
    publishers.push(client);
    const res = await callback(server, JSON.stringify({ ...SRS_PUBLISH, stream: "busy", tcUrl: `rtmp://127.0.0.1:${nginx.port}/src` }));
    expect(res.status).toBe(200);
    expect(res.text).toBe("2");
    const nginxRes = await callback(
      server,
      `call=publish&app=live&name=busy&tcurl=${encodeURIComponent(`rtmp://127.0.0.1:${nginx.port}/live`)}`,
      "application/x-www-form-urlencoded",
    );
    expect(nginxRes.status).toBe(403);
    // An unpublish for it does not touch the WebRTC publisher either.
    expect(await callback(server, JSON.stringify({ action: "on_unpublish", stream: "busy", app: "live" }))).toEqual({ status: 200, text: "0" });
    expect(server.core.ingests.get("busy")).toBeUndefined();
    expect(await liveRooms(server.url)).toEqual(["busy"]);
    expect(server.core.bridges.supervisor.list("ingest")).toEqual([]);
    await client.close();
  });

  it("SRS_CALLBACK_SECRET is required as ?secret=; with token auth and no secret callbacks are refused", async () => {
    const secret = "cb-secret-0123456789";
    const guarded = await startServer({ SRS_CALLBACK_SECRET: secret });
    const authOnly = await startServer({ AUTH_TOKEN: "tok-0123456789" });
    try {
      const body = JSON.stringify({ action: "on_unpublish", stream: "x", app: "live" });
      expect((await callback(guarded, body)).status).toBe(403);
      expect((await callback(guarded, body, "application/json", "?secret=wrong")).status).toBe(403);
      expect(await callback(guarded, body, "application/json", `?secret=${secret}`)).toEqual({ status: 200, text: "0" });
      expect((await callback(authOnly, body)).status).toBe(403);
      expect((await callback(authOnly, "call=publish_done&name=x", "application/x-www-form-urlencoded")).status).toBe(403);
    } finally {
      await guarded.close();
      await authOnly.close();
    }
  });
});
