// Relay tasks (docs/bridges.md, "Relay tasks") through the wire: the API's own bodies, n/r/k auth
// and its call limit, bad input starting nothing, and end to end with real FFmpeg: two short files
// looped to a real nginx-rtmp (read back with ffprobe) and into a room a werift WHEP viewer
// decodes, the callbacks received by a real HTTP listener, stop of one of two targets, list
// replacement, resume, and tasks picked up again by a restarted server. The request checks and
// the run plan alone: relay-plan.test.ts.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeMedia } from "../helpers/ffmpeg-source.js";
import { probe } from "../helpers/ffprobe.js";
import { waitFor } from "../helpers/net.js";
import { liveRooms } from "../helpers/http.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type WhepClient } from "../helpers/whep-client.js";
import { startNginxRtmp, type NginxRtmp } from "../helpers/nginx-rtmp.js";
import { API_AUTH, API_START, API_STOP, auth, KEY } from "./relay-bodies.js";

/** A listener for the relay's callbacks: answers 200 "ok" (or what `answer` says) and keeps each body. */
async function callbackListener(): Promise<{
  url: string;
  bodies: Record<string, string>[];
  answer: { status: number; body: string };
  close(): Promise<void>;
}> {
  const bodies: Record<string, string>[] = [];
  const state = { status: 200, body: "ok" };
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (d) => (data += d));
    req.on("end", () => {
      try {
        bodies.push(JSON.parse(data) as Record<string, string>);
      } catch {
        bodies.push({ invalid: data });
      }
      res.writeHead(state.status).end(state.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/cb`, bodies, answer: state, close: () => new Promise((r) => server.close(() => r())) };
}

function makeClip(file: string, color: string, seconds: number): Promise<void> {
  return makeMedia(file, [
    "-f",
    "lavfi",
    "-i",
    `color=c=${color}:size=320x240:rate=25`,
    "-f",
    "lavfi",
    "-i",
    "sine=sample_rate=44100",
    "-t",
    String(seconds),
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-g",
    "25",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
  ]);
}

const need = requireOrSkip("ffmpeg", "ffprobe", "nginx-rtmp");

describe.skipIf(!need.ok)(need.title("relay tasks end to end"), () => {
  let server: TestServer;
  let nginx: NginxRtmp;
  let media: string;
  let stateDir: string;
  let cb: Awaited<ReturnType<typeof callbackListener>>;
  const viewers: WhepClient[] = [];
  const env = () => ({
    MEDIA_DIR: media,
    RELAY_KEY: KEY,
    RELAY_STATE_FILE: path.join(stateDir, "relay.json"),
    RELAY_MIN_WINDOW_SECONDS: "5",
    RELAY_CALLBACK_TIMEOUT_MS: "2000",
    RELAY_RATE_LIMIT: "100000",
    LOG_LEVEL: process.env.RELAY_LOG ?? "warn",
  });

  beforeAll(async () => {
    media = mkdtempSync(path.join(tmpdir(), "relay-media-"));
    stateDir = mkdtempSync(path.join(tmpdir(), "relay-state-"));
    await Promise.all([makeClip(path.join(media, "red.mp4"), "red", 2), makeClip(path.join(media, "blue.mp4"), "blue", 2)]);
    nginx = await startNginxRtmp();
    cb = await callbackListener();
    server = await startServer(env());
  });
  afterAll(async () => {
    await Promise.all(viewers.map((v) => v.close()));
    await server?.close();
    await nginx?.stop();
    await cb?.close();
    rmSync(media, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  const post = async (body: unknown, query = auth(), p = "/api/relay") => {
    const res = await fetch(`${server.url}${p}?${query}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get("retry-after") };
  };
  const task = async (id: string) =>
    (await (await fetch(`${server.url}/api/relay/${encodeURIComponent(id)}?${auth()}`)).json()) as {
      state: string;
      src: string[];
      targets: { url: string; state: string; file?: number; pass: number; offsetSeconds: number; lastError?: string; resumableUntil?: string }[];
    };
  const startBody = (id: string, src: string[], forward: string[], extend: Record<string, string> = {}) => ({
    transcallbackurl: cb.url,
    cmd: "1",
    type: "video",
    list: [{ id, src: src.map((url) => ({ url })), forward: forward.map((url) => ({ url })), extendParam: extend }],
  });

  it("n/r/k: the API's example key works on both paths; missing, wrong or long r is 403; the relay API is off without RELAY_KEY", async () => {
    const ok = await post(API_STOP.replace('"cmd": "2"', '"cmd": "2"'), API_AUTH, "/api/cdn/v2/forwardRequest.action");
    // Authorized: the body is read (no such task yet → 400 with the reason).
    expect(ok.status).toBe(400);
    expect(ok.json).toMatchObject({ http_code: "400", msg: 'no relay task with id "123"' });
    expect(typeof ok.json.call_time).toBe("number");
    for (const q of [
      "",
      "n=portal&r=1409284800",
      "n=portal&r=1409284800&k=00000000000000000000000000000000",
      `n=portal&r=12345678901&k=${createHash("md5")
        .update("12345678901" + KEY)
        .digest("hex")}`,
    ]) {
      const res = await post(API_START, q);
      expect(res.status).toBe(403);
      expect(res.json.http_code).toBe("403");
    }
    const off = await startServer({ MEDIA_DIR: media });
    try {
      const res = await fetch(`${off.url}/api/relay?${API_AUTH}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: API_START });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { msg: string }).msg).toMatch(/RELAY_KEY is not set/);
    } finally {
      await off.close();
    }
  });

  it("the API's example start body, sent unchanged, is accepted; its sources cannot be read from here, so both targets fail with the reason", async () => {
    const res = await post(API_START);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ http_code: "200", msg: "receive task success!" });
    await expect.poll(async () => (await task("123")).state, { timeout: 10_000 }).toBe("failed");
    const t = await task("123");
    expect(t.targets).toHaveLength(2);
    for (const target of t.targets) expect(target.lastError).toBe("src[0] http://www.video.com/live/abc.mp4 cannot be read");
    expect(server.core.bridges.supervisor.list("relay")).toEqual([]);
  }, 30_000);

  it("bad sources and targets are 400 with the reason, and start nothing", async () => {
    const bad: [string[], string[], RegExp][] = [
      [["/etc/passwd"], [nginx.url("x")], /src\[0\]: invalid url/],
      [["file:///etc/passwd"], [nginx.url("x")], /src\[0\]: invalid url/],
      [["concat:red.mp4|blue.mp4"], [nginx.url("x")], /src\[0\]: invalid url/],
      [["../red.mp4"], [nginx.url("x")], /src\[0\]: invalid url: file paths must not contain '\.\.'/],
      [["missing.mp4"], [nginx.url("x")], /no such file under MEDIA_DIR/],
      [[nginx.url("live")], [nginx.url("x")], /plays files/],
      [["red.mp4"], ["file:///tmp/out.flv"], /rtmp:\/\/ or rtmps:\/\/ URL, or room/],
    ];
    for (const [src, fwd, re] of bad) {
      const res = await post(startBody("bad", src, fwd));
      expect(res.status, `${src} → ${fwd}`).toBe(400);
      expect(String(res.json.msg)).toMatch(re);
    }
    expect(server.core.bridges.supervisor.list("relay")).toEqual([]);
    expect((await fetch(`${server.url}/api/relay/bad?${auth()}`)).status).toBe(404);
  });

  it("loops two files twice to nginx-rtmp and into a room: ffprobe reads the RTMP stream, a WHEP viewer decodes the room, callbacks per file and at the end", async () => {
    cb.bodies.length = 0;
    const res = await post(startBody("loop2", ["red.mp4", "blue.mp4"], [nginx.url("relay1"), "room:cinema"], { loop: "2", callBackFileInfo: "1" }));
    expect(res.json).toMatchObject({ http_code: "200", msg: "receive task success!" });
    expect(res.status).toBe(200);
    await expect.poll(() => liveRooms(server.url), { timeout: 10_000 }).toContain("cinema");
    const { client } = await playStream(server.whepUrl("cinema"), { video: [{ codec: "H264", profileLevelId: "42e01f" }] });
    viewers.push(client);
    await client.waitForKeyframes(1, 15_000);
    await client.waitForFrames(25, 15_000, "video");
    await client.waitForPackets(25, "audio", 10_000);
    const p = await probe(nginx.url("relay1"), { extraArgs: ["-read_intervals", "%+1"], timeoutMs: 20_000 });
    expect(p.streams.map((s) => s.codec_name).sort()).toEqual(["aac", "h264"]);
    const running = await task("loop2");
    expect(running.state).toBe("running");
    expect(running.targets.map((t) => t.url).sort()).toEqual(["room:cinema", "rtmp://127.0.0.1:" + nginx.port + "/live/****"].sort());
    // 2 passes × (2 s + 2 s), in real time: finished well within 30 s.
    await waitFor(() => cb.bodies.filter((b) => b.msg === "Push finished!").length === 2, {
      timeoutMs: 30_000,
      what: "both targets finished",
      describe: () => JSON.stringify(cb.bodies.map((b) => b.msg)),
    });
    const done = await task("loop2");
    expect(done.state).toBe("finished");
    await expect.poll(() => liveRooms(server.url), { timeout: 5000 }).not.toContain("cinema");
    for (const b of cb.bodies) {
      expect(b).toMatchObject({ code: "0", id: "loop2", srcurl: JSON.stringify([{ url: "red.mp4" }, { url: "blue.mp4" }]) });
      expect(["room:cinema", nginx.url("relay1")]).toContain(b.forwardurl);
    }
    const msgs = cb.bodies.filter((b) => b.forwardurl === "room:cinema").map((b) => b.msg);
    expect(msgs[0]).toBe("Start pushing!");
    expect(msgs.at(-1)).toBe("Push finished!");
    // The second file started in each pass (progress is followed once a second, so at least one of them is seen).
    expect(msgs.filter((m) => m === "Start pushing file blue.mp4").length).toBeGreaterThanOrEqual(1);
    expect(server.core.bridges.supervisor.list("relay")).toEqual([]);
  }, 60_000);

  it("files without audio relay into a room with a video track only, which a viewer decodes", async () => {
    await makeMedia(path.join(media, "silent.mp4"), [
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=320x240:rate=25",
      "-t",
      "3",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
    ]);
    expect((await post(startBody("silent", ["silent.mp4"], ["room:silent"], { loop: "1" }))).status).toBe(200);
    await expect.poll(() => liveRooms(server.url), { timeout: 10_000 }).toContain("silent");
    const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as { name: string; codecs: string[] }[];
    expect(rooms.find((x) => x.name === "silent")?.codecs).toEqual(["H264"]);
    const { client } = await playStream(server.whepUrl("silent"), { audio: false, video: [{ codec: "H264", profileLevelId: "42e01f" }] });
    viewers.push(client);
    await client.waitForFrames(25, 10_000, "video");
    await expect.poll(async () => (await task("silent")).state, { timeout: 15_000 }).toBe("finished");
  }, 40_000);

  it("fops and a watermark transcode what reaches the target: the size, frame rate and codec asked for", async () => {
    await makeMedia(path.join(media, "logo.png"), ["-f", "lavfi", "-i", "color=c=white:size=40x20", "-frames:v", "1"]);
    const body = {
      cmd: "1",
      type: "video",
      list: [
        {
          id: "fops",
          src: [{ url: "red.mp4", wmimage: "logo.png", wmgravity: "BOTTOM_RIGHT" }, { url: "blue.mp4" }],
          forward: [{ url: nginx.url("fops") }],
          fops: { bps: "300", res: "320x180", fps: "15", vcodec: "libx264", acodec: "libmp3lame" },
        },
      ],
    };
    expect((await post(body)).status).toBe(200);
    await waitFor(() => server.core.bridges.supervisor.list("relay").some((j) => j.state === "running"), { timeoutMs: 15_000, what: "the relay running" });
    const p = await probe(nginx.url("fops"), { extraArgs: ["-read_intervals", "%+1"], timeoutMs: 20_000 });
    const v = p.streams.find((x) => x.codec_type === "video");
    const a = p.streams.find((x) => x.codec_type === "audio");
    expect(v).toMatchObject({ codec_name: "h264", width: 320, height: 180 });
    expect(v?.r_frame_rate).toBe("15/1");
    expect(a?.codec_name).toBe("mp3");
    expect((await post({ cmd: "2", type: "video", list: [{ id: "fops", src: [{ url: "" }], forward: [{ url: nginx.url("fops") }] }] })).status).toBe(200);
  }, 40_000);

  it("start and end schedule a task: scheduled, then running at start, stopped at end", async () => {
    cb.bodies.length = 0;
    const start = Date.now() + 2500;
    const end = start + 6000; // RELAY_MIN_WINDOW_SECONDS is 5 here
    const body = { ...startBody("sched", ["red.mp4", "blue.mp4"], [nginx.url("sched")]), transcallbackurl: cb.url };
    (body.list[0] as Record<string, unknown>).start = String(start);
    (body.list[0] as Record<string, unknown>).end = String(end);
    expect((await post(body)).status).toBe(200);
    expect((await task("sched")).state).toBe("scheduled");
    expect(server.core.bridges.supervisor.list("relay").filter((j) => j.id.startsWith("relay:sched:"))).toEqual([]);
    await expect.poll(async () => (await task("sched")).state, { timeout: 10_000, interval: 200 }).toBe("running");
    expect(Date.now()).toBeGreaterThanOrEqual(start);
    await expect.poll(async () => (await task("sched")).state, { timeout: 15_000, interval: 200 }).toBe("stopped");
    expect(Date.now()).toBeGreaterThanOrEqual(end);
    expect(server.core.bridges.supervisor.list("relay").filter((j) => j.id.startsWith("relay:sched:"))).toEqual([]);
    await waitFor(() => cb.bodies.some((b) => b.id === "sched" && b.cmd === "2"), { timeoutMs: 5000, what: "the stop callback at end" });
  }, 40_000);

  it("cmd 2 stops one of two targets and keeps the other; cmd 3 replaces the list; cmd 5 resumes the stopped one", async () => {
    cb.bodies.length = 0;
    const a = nginx.url("relayA");
    const b = nginx.url("relayB");
    expect((await post(startBody("forever", ["red.mp4", "blue.mp4"], [a, b]))).status).toBe(200);
    await waitFor(() => server.core.bridges.supervisor.list("relay").filter((j) => j.state === "running").length === 2, {
      timeoutMs: 15_000,
      what: "two relay jobs running",
    });
    const stop = await post({ transcallbackurl: cb.url, cmd: "2", type: "video", list: [{ id: "forever", src: [{ url: "" }], forward: [{ url: a }] }] });
    expect(stop.status).toBe(200);
    let t = await task("forever");
    expect(t.targets.find((x) => x.url.endsWith("relayA") || x.url.includes("****"))).toBeDefined();
    const [ta, tb] = [t.targets[0]!, t.targets[1]!];
    expect(ta.state).toBe("stopped");
    expect(ta.resumableUntil).toBeDefined();
    expect(tb.state).toBe("running");
    expect(server.core.bridges.supervisor.list("relay")).toHaveLength(1);
    await waitFor(() => cb.bodies.some((x) => x.cmd === "2" && x.msg === "Stop pushing!" && x.forwardurl === a), {
      timeoutMs: 5000,
      what: "the stop callback",
    });
    // A forward url the task does not have: 400, nothing changes.
    const wrong = await post({ cmd: "2", type: "video", list: [{ id: "forever", src: [{ url: "" }], forward: [{ url: nginx.url("other") }] }] });
    expect(wrong.status).toBe(400);
    expect(String(wrong.json.msg)).toMatch(/has no forward url/);

    const update = await post({
      cmd: "3",
      type: "video",
      list: [{ id: "forever", src: [{ url: "blue.mp4" }], forward: [{ url: b }], extendParam: { waitCrtUrlFinish: "0" } }],
    });
    expect(update.status).toBe(200);
    t = await task("forever");
    expect(t.src).toEqual(["blue.mp4"]);
    await waitFor(() => server.core.bridges.supervisor.list("relay").some((j) => j.state === "running"), { timeoutMs: 10_000, what: "B playing the new list" });

    const resume = await post({
      transcallbackurl: cb.url,
      cmd: "5",
      type: "video",
      list: [{ id: "forever", src: [{ url: "red.mp4" }, { url: "blue.mp4" }], forward: [{ url: a }] }],
    });
    expect(resume.status).toBe(200);
    await expect.poll(async () => (await task("forever")).targets[0]?.state, { timeout: 10_000 }).toBe("running");
    await waitFor(() => server.core.bridges.supervisor.list("relay").filter((j) => j.state === "running").length === 1, {
      timeoutMs: 15_000,
      what: "A's job running",
    });
    const p = await probe(a, { extraArgs: ["-read_intervals", "%+1"], timeoutMs: 20_000 });
    expect(p.streams.map((s) => s.codec_name)).toContain("h264");
    const stopAll = await post({ cmd: "2", type: "video", list: [{ id: "forever", src: [{ url: "" }], forward: [{ url: a }, { url: b }] }] });
    expect(stopAll.status).toBe(200);
    expect((await task("forever")).state).toBe("stopped");
    expect(server.core.bridges.supervisor.list("relay")).toEqual([]);
  }, 60_000);

  it("a target that cannot be reached ends as failed with a code 1 callback; the server goes on", async () => {
    cb.bodies.length = 0;
    expect((await post(startBody("unreachable", ["red.mp4"], ["rtmp://127.0.0.1:1/live/nothing"]))).status).toBe(200);
    // Three retries with back-off (1 s, 2 s, 4 s) after the first failure.
    await expect.poll(async () => (await task("unreachable")).state, { timeout: 30_000, interval: 500 }).toBe("failed");
    const t = await task("unreachable");
    expect(t.targets[0]!.lastError).toBeTruthy();
    await waitFor(() => cb.bodies.some((b) => b.id === "unreachable" && b.code === "1"), { timeoutMs: 5000, what: "the failure callback" });
    expect(server.core.bridges.supervisor.list("relay")).toEqual([]);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }, 45_000);

  it("a restarted server picks its running relay up again from the state file; 100 calls per window then 429", async () => {
    expect((await post(startBody("persist", ["red.mp4", "blue.mp4"], [nginx.url("persist")]))).status).toBe(200);
    await waitFor(() => server.core.bridges.supervisor.list("relay").some((j) => j.state === "running"), { timeoutMs: 15_000, what: "the relay running" });
    await server.close();
    const saved = JSON.parse(readFileSync(path.join(stateDir, "relay.json"), "utf8")) as { tasks: { spec: { id: string }; targets: { state: string }[] }[] };
    expect(saved.tasks.find((t) => t.spec.id === "persist")?.targets[0]?.state).toBe("running");
    server = await startServer({ ...env(), RELAY_RATE_LIMIT: "3" });
    await waitFor(() => server.core.bridges.supervisor.list("relay").some((j) => j.id.startsWith("relay:persist:")), {
      timeoutMs: 15_000,
      what: "the relay restored",
    });
    // Stopped tasks stay stopped across the restart.
    expect((await task("forever")).state).toBe("stopped");
    expect((await task("persist")).state).toBe("running");
    const p = await probe(nginx.url("persist"), { extraArgs: ["-read_intervals", "%+1"], timeoutMs: 20_000 });
    expect(p.streams.map((s) => s.codec_name)).toContain("h264");
    // GET above spent calls of the account's window too: 3 per window here.
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 3; i++)
      statuses.push(
        (last = await post({ cmd: "2", type: "video", list: [{ id: "persist", src: [{ url: "" }], forward: [{ url: nginx.url("persist") }] }] })).status,
      );
    expect(statuses.at(-1)).toBe(429);
    expect(last?.json.http_code).toBe("429");
    expect(Number(last?.retryAfter)).toBeGreaterThan(0);
  }, 60_000);
});
