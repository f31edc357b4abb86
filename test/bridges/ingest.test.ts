// Ingest: a source pulled into a room by a supervised FFmpeg. The URL policy and the FFmpeg
// arguments alone; then end to end: H.264 with B-frames + AAC pushed by FFmpeg into a real
// nginx-rtmp, pulled with POST /api/rooms/{room}/ingest, decoded by a werift WHEP viewer; files
// from MEDIA_DIR (looped, and played out); DELETE and admin close ending the room with no FFmpeg
// left; bad sources refused with nothing started.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingestArgs } from "../../src/bridges/ingest-args.js";
import { maskSourceUrl, resolveIngestSource, type SourcePolicy } from "../../src/bridges/ingest-source.js";
import { DomainError } from "../../src/errors.js";
import { parseIngestBody } from "../../src/http/ingest.js";
import { makeMedia, pidAlive, pushRtmp, stopChild } from "../helpers/ffmpeg-source.js";
import { liveRooms, requestJson } from "../helpers/http.js";
import { sleep, waitFor } from "../helpers/net.js";
import { PidWatch } from "../helpers/procfs.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type WhepClient } from "../helpers/whep-client.js";
import { startNginxRtmp, type NginxRtmp } from "../helpers/nginx-rtmp.js";

const media = mkdtempSync(path.join(tmpdir(), "ingest-media-"));
const outside = mkdtempSync(path.join(tmpdir(), "ingest-outside-"));
afterAll(() => {
  rmSync(media, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

async function refusal(raw: unknown, policy: SourcePolicy): Promise<string> {
  try {
    await resolveIngestSource(raw, policy);
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).kind).toBe("invalid_input");
    return (err as Error).message;
  }
  throw new Error(`${String(raw)} was accepted`);
}

describe("ingest URL policy", () => {
  const policy: SourcePolicy = { mediaDir: media, allowedHosts: [] };
  beforeAll(() => {
    writeFileSync(path.join(media, "clip.mp4"), "not really");
    mkdirSync(path.join(media, "sub"), { recursive: true });
    writeFileSync(path.join(media, "sub", "b.flv"), "x");
    writeFileSync(path.join(outside, "secret.mp4"), "x");
    symlinkSync(path.join(outside, "secret.mp4"), path.join(media, "escape.mp4"));
    symlinkSync(outside, path.join(media, "linkdir"));
  });

  it("accepts rtmp(s), http(s) .m3u8/.mp4/.flv and files under MEDIA_DIR, each with its own whitelist", async () => {
    expect(await resolveIngestSource("rtmp://127.0.0.1:1935/live/cam1", policy)).toMatchObject({
      kind: "rtmp",
      input: "rtmp://127.0.0.1:1935/live/cam1",
      protocols: ["rtmp", "rtmps", "tcp", "tls"],
      live: true,
    });
    expect((await resolveIngestSource("rtmps://a.example/app/key", policy)).kind).toBe("rtmp");
    expect(await resolveIngestSource("https://cdn.example/x/index.m3u8?sig=abc", policy)).toMatchObject({
      kind: "hls",
      display: "https://cdn.example/x/index.m3u8?****",
      protocols: ["http", "https", "tcp", "tls", "crypto"],
    });
    expect(await resolveIngestSource("http://cdn.example/v.MP4", policy)).toMatchObject({
      kind: "http",
      live: false,
      protocols: ["http", "https", "tcp", "tls"],
    });
    expect((await resolveIngestSource("http://cdn.example/v.flv", policy)).kind).toBe("http");
    const file = await resolveIngestSource("clip.mp4", policy);
    expect(file).toMatchObject({ kind: "file", display: "clip.mp4", protocols: ["file"], live: false });
    expect(file.input).toMatch(/^file:\/.*\/clip\.mp4$/);
    expect((await resolveIngestSource("sub/b.flv", policy)).display).toBe(path.join("sub", "b.flv"));
    expect((await resolveIngestSource(path.join(media, "clip.mp4"), policy)).kind).toBe("file");
  });

  it("refuses other protocols, traversal, paths outside MEDIA_DIR and symlinks out of it", async () => {
    expect(await refusal("/etc/passwd", policy)).toMatch(/under MEDIA_DIR/);
    expect(await refusal("file:///etc/passwd", policy)).toMatch(/"file:" sources are not accepted/);
    expect(await refusal("concat:a.mp4|b.mp4", policy)).toMatch(/"concat:" sources are not accepted/);
    expect(await refusal("subfile,,start,0,end,100,,:/etc/passwd", policy)).toMatch(/must not contain ':'/);
    expect(await refusal("pipe:0", policy)).toMatch(/"pipe:"/);
    expect(await refusal("data:video/mp4;base64,AAAA", policy)).toMatch(/"data:"/);
    expect(await refusal("ftp://x/y.mp4", policy)).toMatch(/"ftp:"/);
    expect(await refusal("../x.mp4", policy)).toMatch(/'\.\.'/);
    expect(await refusal("sub/../../x.mp4", policy)).toMatch(/'\.\.'/);
    expect(await refusal(path.join(outside, "secret.mp4"), policy)).toMatch(/under MEDIA_DIR/);
    expect(await refusal("escape.mp4", policy)).toMatch(/under MEDIA_DIR/);
    expect(await refusal("linkdir/secret.mp4", policy)).toMatch(/under MEDIA_DIR/);
    expect(await refusal("missing.mp4", policy)).toMatch(/no such file/);
    expect(await refusal("notes.txt", policy)).toMatch(/unsupported file type/);
    expect(await refusal("sub", policy)).toMatch(/unsupported file type/);
    expect(await refusal("http://cdn.example/page.html", policy)).toMatch(/\.m3u8, \.mp4 or \.flv/);
    expect(await refusal("rtmp://host/onlyapp", policy)).toMatch(/application and a stream name/);
    expect(await refusal("rtmp://host/live/a b", policy)).toMatch(/whitespace/);
    expect(await refusal("rtmp:/host/live/x", policy)).toMatch(/expected rtmp:\/\//);
    expect(await refusal("rtmp://host/live/x\nkey", policy)).toMatch(/control/);
    expect(await refusal("", policy)).toMatch(/"url" is required/);
    expect(await refusal(42, policy)).toMatch(/"url" is required/);
    expect(await refusal(`rtmp://h/live/${"k".repeat(3000)}`, policy)).toMatch(/longer than/);
  });

  it("limits network sources to INGEST_ALLOWED_HOSTS when it is set", async () => {
    const strict: SourcePolicy = { mediaDir: media, allowedHosts: ["127.0.0.1", "*.example.com"] };
    await resolveIngestSource("rtmp://127.0.0.1:1935/live/x", strict);
    await resolveIngestSource("https://cdn.example.com/a.m3u8", strict);
    expect(await refusal("rtmp://10.0.0.1/live/x", strict)).toMatch(/not in INGEST_ALLOWED_HOSTS/);
    expect(await refusal("https://example.com.evil.net/a.m3u8", strict)).toMatch(/not in INGEST_ALLOWED_HOSTS/);
    expect(await refusal("https://example.com/a.m3u8", strict)).toMatch(/not in INGEST_ALLOWED_HOSTS/);
    // Files are governed by MEDIA_DIR alone.
    await resolveIngestSource("clip.mp4", strict);
  });

  it("masks credentials and query strings for listings and logs", () => {
    expect(maskSourceUrl("rtmp://u:p@h:1935/live/key?token=x")).toBe("rtmp://****@h:1935/live/key?****");
    expect(maskSourceUrl("rtmp://h/live/key")).toBe("rtmp://h/live/key");
  });

  it("validates the JSON body", () => {
    expect(parseIngestBody({ url: "x" })).toEqual({ url: "x", loop: false });
    expect(parseIngestBody({ url: "x", loop: true })).toEqual({ url: "x", loop: true });
    expect(parseIngestBody(undefined)).toMatch(/JSON object/);
    expect(parseIngestBody([])).toMatch(/JSON object/);
    expect(parseIngestBody({})).toMatch(/"url" is required/);
    expect(parseIngestBody({ url: 1 })).toMatch(/"url" is required/);
    expect(parseIngestBody({ url: "x", loop: "yes" })).toMatch(/"loop"/);
  });
});

describe("ingest FFmpeg arguments", () => {
  it("re-encodes to Constrained Baseline H.264 without B-frames and Opus, two RTP outputs on loopback", () => {
    const args = ingestArgs({
      source: { kind: "rtmp", input: "rtmp://h/live/k", display: "rtmp://h/live/k", protocols: ["rtmp", "tcp"], live: true },
      loop: false,
      ports: [40000, 40002],
      ssrcs: [0x7fffffff, 1],
    });
    const joined = args.join(" ");
    expect(joined).toContain("-rw_timeout 10000000 -i rtmp://h/live/k");
    expect(args).not.toContain("-re");
    expect(joined).toContain("-c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline -bf 0 -g 30");
    expect(joined).toContain("-pix_fmt yuv420p");
    expect(joined).toContain("-payload_type 96 -ssrc 2147483647 -protocol_whitelist rtp,udp -f rtp rtp://127.0.0.1:40000?rtcpport=40000&pkt_size=1200");
    expect(joined).toContain("-c:a libopus -ar 48000 -ac 2");
    expect(joined).toContain("-payload_type 111 -ssrc 1 -protocol_whitelist rtp,udp -f rtp rtp://127.0.0.1:40002?rtcpport=40002&pkt_size=1200");
    const file = ingestArgs({
      source: { kind: "file", input: "file:/m/a.mp4", display: "a.mp4", protocols: ["file"], live: false },
      loop: true,
      ports: [1, 2],
      ssrcs: [1, 2],
    });
    expect(file.slice(0, 5)).toEqual(["-re", "-stream_loop", "-1", "-i", "file:/m/a.mp4"]);
  });
});

// ---- end to end -------------------------------------------------------------------------------

/** A viewer that takes only what an ingest sends: H.264 42e01f and Opus. */
function view(server: TestServer, room: string): Promise<{ client: WhepClient }> {
  return playStream(server.whepUrl(room), { video: [{ codec: "H264", profileLevelId: "42e01f" }] });
}

const need = requireOrSkip("ffmpeg", "nginx-rtmp");

describe.skipIf(!need.ok)(need.title("ingest end to end: nginx-rtmp and MEDIA_DIR files into rooms"), () => {
  let server: TestServer;
  let nginx: NginxRtmp;
  const children: ChildProcess[] = [];
  const clients: WhepClient[] = [];
  /** Every ingest FFmpeg pid seen, checked dead at the end. */
  let ffmpegPids: PidWatch;

  beforeAll(async () => {
    // A 3 s clip with B-frames and AAC, as files come.
    await makeMedia(path.join(media, "clip3s.mp4"), [
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=320x240:rate=25",
      "-f",
      "lavfi",
      "-i",
      "sine=sample_rate=44100",
      "-t",
      "3",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-bf",
      "2",
      "-g",
      "50",
      "-pix_fmt",
      "yuv420p",
      "-c:a",
      "aac",
    ]);
    server = await startServer({ MEDIA_DIR: media });
    nginx = await startNginxRtmp();
    ffmpegPids = new PidWatch(() => server.core.bridges.supervisor.pids());
  });

  afterAll(async () => {
    ffmpegPids?.stop();
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(children.map((c) => stopChild(c)));
    await server?.close();
    await nginx?.stop();
    for (const p of ffmpegPids?.seen ?? []) expect(pidAlive(p), `FFmpeg ${p} still alive after close`).toBe(false);
  });

  it("bad sources get 400 and start nothing", async () => {
    for (const url of ["/etc/passwd", "file:///etc/passwd", "concat:a|b", "../x.mp4", "ftp://x", "subfile,,start,0,end,9,,:/etc/passwd", "pipe:0"]) {
      const res = await requestJson(server.url, "POST", "/api/rooms/bad/ingest", { url });
      expect(res.status, url).toBe(400);
      expect(res.json.error, url).toMatch(/^invalid url: /);
    }
    expect((await requestJson(server.url, "POST", "/api/rooms/bad/ingest", {})).json).toEqual({ error: '"url" is required and must be a string' });
    expect((await requestJson(server.url, "POST", "/api/rooms/bad/ingest", { url: "x.mp4", loop: 1 })).status).toBe(400);
    expect((await requestJson(server.url, "POST", "/api/rooms/bad/ingest", { url: "rtmp://h/live/x", loop: true })).json.error).toMatch(
      /loop applies to files/,
    );
    const raw = await fetch(`${server.url}/api/rooms/bad/ingest`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{nope" });
    expect(raw.status).toBe(400);
    expect((await requestJson(server.url, "POST", "/api/rooms/bad%20room/ingest", { url: "clip3s.mp4" })).json).toEqual({ error: "invalid room name" });
    expect((await requestJson(server.url, "GET", "/api/rooms/bad/ingest")).status).toBe(404);
    expect((await requestJson(server.url, "DELETE", "/api/rooms/bad/ingest")).status).toBe(404);
    expect(server.core.bridges.supervisor.list("ingest")).toEqual([]);
    expect(await liveRooms(server.url)).toEqual([]);
  });

  it("an RTMP stream with B-frames on nginx-rtmp becomes a room WHEP viewers decode; DELETE ends it", async () => {
    const pusher = pushRtmp(nginx.url("cam1"), { width: 640, height: 360, fps: 30, gop: 60, bFrames: 2, high: true });
    children.push(pusher);
    await sleep(700); // the encoder's publish is up
    const t0 = performance.now();
    const created = await requestJson(server.url, "POST", "/api/rooms/cam1/ingest", { url: nginx.url("cam1") });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ room: "cam1", url: nginx.url("cam1"), state: "starting", loop: false, origin: "api" });
    expect(created.json.id).toMatch(/^[0-9a-f]{16}$/);
    const again = await requestJson(server.url, "POST", "/api/rooms/cam1/ingest", { url: nginx.url("cam1") });
    expect(again).toMatchObject({ status: 409, json: { error: "publisher already exists in this room" } });

    const rooms = await requestJson(server.url, "GET", "/api/rooms");
    expect(rooms.json).toEqual([expect.objectContaining({ name: "cam1", hasPublisher: true, codecs: ["H264", "opus"] })]);
    const job = server.core.ingests.job("cam1")!;
    const pid = job.pid!;
    expect(pidAlive(pid)).toBe(true);

    const { client } = await view(server, "cam1");
    clients.push(client);
    await client.waitForKeyframes(1, 15_000);
    const firstKeyframe = performance.now() - t0;
    await client.waitForFrames(30, 10_000, "video");
    await client.waitForPackets(50, "audio", 10_000);
    expect(client.video.firstFrameWasKeyframe).toBe(true);
    expect(client.video.codec?.name.toUpperCase()).toBe("H264");
    // The SPS the viewer got: Constrained Baseline (profile_idc 66), whatever the source was.
    expect(client.video.spsProfileLevelId).toMatch(/^42/);
    console.log(
      `[ingest] RTMP ingest POST → first WHEP keyframe ${Math.round(firstKeyframe)} ms; ` +
        `viewer POST → first keyframe ${Math.round(client.video.firstKeyframeMs ?? -1)} ms`,
    );

    // The job reports "running" once FFmpeg's first progress report arrives, which on a busy
    // machine can come after the viewer's first frames.
    await expect.poll(async () => (await requestJson(server.url, "GET", "/api/rooms/cam1/ingest")).json.state, { timeout: 10_000 }).toBe("running");
    const state = await requestJson(server.url, "GET", "/api/rooms/cam1/ingest");
    expect(state.json).toMatchObject({ id: created.json.id, room: "cam1", state: "running", pid });
    expect(state.json.packets).toBeGreaterThan(100);

    // A late joiner starts on a keyframe at once (the room's GOP cache).
    const late = await view(server, "cam1");
    clients.push(late.client);
    await late.client.waitForKeyframes(1, 5000);
    expect(late.client.video.firstFrameWasKeyframe).toBe(true);
    console.log(`[ingest] late joiner POST → first keyframe ${Math.round(late.client.video.firstKeyframeMs ?? -1)} ms`);

    const del = await requestJson(server.url, "DELETE", "/api/rooms/cam1/ingest");
    expect(del).toMatchObject({ status: 200, json: { stopped: created.json.id, room: "cam1", state: "stopped" } });
    expect(await liveRooms(server.url)).toEqual([]);
    expect(pidAlive(pid)).toBe(false);
    expect(server.core.bridges.supervisor.pids()).toEqual([]);
    await waitFor(() => client.pc.connectionState !== "connected" || client.video.lastPacketAt! < performance.now() - 500, { timeoutMs: 5000 });
    expect((await requestJson(server.url, "GET", "/api/rooms/cam1/ingest")).status).toBe(404);
    // The room is free again.
    const third = await requestJson(server.url, "POST", "/api/rooms/cam1/ingest", { url: nginx.url("cam1") });
    expect(third.status).toBe(201);
    // Closed by an admin: the ingest's FFmpeg stops with the room.
    await waitFor(() => server.core.ingests.job("cam1")?.pid !== undefined, { timeoutMs: 5000 });
    const pid3 = server.core.ingests.job("cam1")!.pid!;
    await server.core.rooms.closeRoom("cam1", "admin-close");
    await waitFor(() => !pidAlive(pid3) && server.core.ingests.job("cam1") === undefined, { timeoutMs: 8000, what: "FFmpeg gone after admin close" });
    expect((await requestJson(server.url, "GET", "/api/rooms/cam1/ingest")).json).toMatchObject({ state: "stopped" });
    await stopChild(pusher);
  }, 60_000);

  it("a MEDIA_DIR file: looped it keeps playing, unlooped it ends the room when it has played out", async () => {
    const looped = await requestJson(server.url, "POST", "/api/rooms/filmloop/ingest", { url: "clip3s.mp4", loop: true });
    expect(looped.status).toBe(201);
    expect(looped.json).toMatchObject({ url: "clip3s.mp4", loop: true });
    const once = await requestJson(server.url, "POST", "/api/rooms/filmonce/ingest", { url: path.join(media, "clip3s.mp4") });
    expect(once.status).toBe(201);
    const { client } = await view(server, "filmloop");
    clients.push(client);
    await client.waitForKeyframes(1, 10_000);
    expect(client.video.firstFrameWasKeyframe).toBe(true);
    await client.waitForPackets(20, "audio", 5000);
    // The 3 s clip ends: its room closes by itself and GET says so.
    await expect.poll(() => liveRooms(server.url), { timeout: 10_000 }).not.toContain("filmonce");
    expect((await requestJson(server.url, "GET", "/api/rooms/filmonce/ingest")).json).toMatchObject({ state: "stopped", restarts: 0 });
    // The looped one plays on past the clip's length.
    await sleep(1500);
    expect(await liveRooms(server.url)).toEqual(["filmloop"]);
    const frames = client.video.frames;
    await client.waitForFrames(frames + 20, 5000);
    expect((await requestJson(server.url, "DELETE", "/api/rooms/filmloop/ingest")).status).toBe(200);
    expect(await liveRooms(server.url)).toEqual([]);
    expect(server.core.bridges.supervisor.pids()).toEqual([]);
  }, 40_000);

  it("an audio-only file, a video-only file and Baseline H.264 without B-frames: only the streams there are, the H.264 copied unless looped", async () => {
    const make = (name: string, args: string[], seconds = 3) => makeMedia(path.join(media, name), [...args, "-t", String(seconds)]);
    await Promise.all([
      make("tone.mp4", ["-f", "lavfi", "-i", "sine=sample_rate=48000", "-c:a", "aac"]),
      make("mute.mp4", ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p"]),
      // Long enough to be viewed unlooped.
      make(
        "baseline.mp4",
        [
          "-f",
          "lavfi",
          "-i",
          "testsrc2=size=320x240:rate=25",
          "-f",
          "lavfi",
          "-i",
          "sine=sample_rate=44100",
          "-c:v",
          "libx264",
          "-preset",
          "ultrafast",
          "-profile:v",
          "baseline",
          "-g",
          "25",
          "-pix_fmt",
          "yuv420p",
          "-c:a",
          "aac",
        ],
        30,
      ),
    ]);
    const tone = await requestJson(server.url, "POST", "/api/rooms/tone/ingest", { url: "tone.mp4", loop: true });
    const mute = await requestJson(server.url, "POST", "/api/rooms/mute/ingest", { url: "mute.mp4", loop: true });
    const base = await requestJson(server.url, "POST", "/api/rooms/base/ingest", { url: "baseline.mp4" });
    expect([tone.status, mute.status, base.status]).toEqual([201, 201, 201]);
    expect(tone.json).toMatchObject({ video: "none", audio: true });
    expect(mute.json).toMatchObject({ video: "transcode", audio: false });
    expect(base.json).toMatchObject({ video: "copy", audio: true });
    // Looped, the same file is re-encoded (FFmpeg stops copied video at its first loop).
    const baseLoop = await requestJson(server.url, "POST", "/api/rooms/baseloop/ingest", { url: "baseline.mp4", loop: true });
    expect(baseLoop.json).toMatchObject({ video: "transcode", audio: true });
    expect((await requestJson(server.url, "DELETE", "/api/rooms/baseloop/ingest")).status).toBe(200);
    const rooms = (await requestJson(server.url, "GET", "/api/rooms")).json as { name: string; codecs: string[] }[];
    const codecs = Object.fromEntries(rooms.map((r) => [r.name, r.codecs]));
    expect(codecs).toMatchObject({ tone: ["opus"], mute: ["H264"], base: ["H264", "opus"] });

    const toneView = await playStream(server.whepUrl("tone"), { video: false });
    clients.push(toneView.client);
    await toneView.client.waitForPackets(50, "audio", 10_000);
    const muteView = await view(server, "mute");
    clients.push(muteView.client);
    await muteView.client.waitForFrames(25, 10_000, "video");
    const baseView = await view(server, "base");
    clients.push(baseView.client);
    await baseView.client.waitForKeyframes(1, 10_000);
    await baseView.client.waitForFrames(25, 10_000, "video");
    await baseView.client.waitForPackets(25, "audio", 10_000);
    // Copied as it is: the viewer's SPS is the file's (Baseline, profile_idc 66), and the job has no encoder.
    expect(baseView.client.video.spsProfileLevelId).toMatch(/^42/);
    const job = server.core.ingests.job("base")!;
    expect(job.info().state).not.toBe("failed");
    for (const room of ["tone", "mute", "base"]) expect((await requestJson(server.url, "DELETE", `/api/rooms/${room}/ingest`)).status).toBe(200);
    expect(server.core.bridges.supervisor.pids()).toEqual([]);
  }, 60_000);
});
