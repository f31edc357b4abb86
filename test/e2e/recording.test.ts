// Recording through the wire: publish real media, end the session every way docs/api.md names,
// and open each file with the real ffprobe.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { durationSeconds, probe, streamOf, type ProbeResult } from "../helpers/ffprobe.js";
import { sleep, waitFor } from "../helpers/net.js";
import { startServerProcess } from "../helpers/server-process.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { publishTestStream, WhipClient, type SourceSettings } from "../helpers/whip-client.js";

/** The source these tests always used: a 320x240 test pattern at 400 kb/s, 30 fps, 0.5 s GOP. */
const SOURCE: SourceSettings = { width: 320, height: 240, bitrateKbps: 400, gop: 15 };

/**
 * Opus pre-skip the recorder writes (OpusHead, RFC 7845): 3840 samples = 80 ms of concealment
 * frames before the first RTP packet. ffprobe's duration of an Ogg Opus file is the last granule
 * position / 48000, pre-skip included, so it reads 80 ms longer than the audio that plays
 * (src/media/ogg.ts).
 */
const OPUS_PRE_SKIP_S = 3840 / 48000;

/** One Opus frame as FFmpeg sends it (-frame_duration 20). */
const OPUS_FRAME_S = 0.02;

/**
 * The media time a publisher puts on the wire from now until stop(), per track: the span of the
 * RTP timestamps of the packets its sender could send (DTLS up; werift drops the rest). The files
 * are measured against this rather than the wall clock: on a busy machine FFmpeg's -re clock
 * falls behind, then catches up in a burst, so a session of 4 s wall clock can carry 3 s or 4.4 s
 * of media.
 */
function sentMedia(pub: WhipClient): { seconds(): { video: number; audio: number }; stop(): void } {
  const clockRate = { video: 90_000, audio: 48_000 };
  const span = { video: 0, audio: 0 };
  const subs = (["video", "audio"] as const).flatMap((kind) => {
    const sender = pub.sender(kind);
    const track = sender?.track;
    if (!sender || !track) return [];
    let first: number | undefined;
    const sub = track.onReceiveRtp.subscribe((rtp) => {
      if (sender.dtlsTransport?.state !== "connected" || !sender.codec) return;
      first ??= rtp.header.timestamp;
      const elapsed = (rtp.header.timestamp - first) >>> 0;
      if (elapsed < 0x8000_0000) span[kind] = Math.max(span[kind], elapsed);
    });
    return [sub];
  });
  return {
    seconds: () => ({ video: span.video / clockRate.video, audio: span.audio / clockRate.audio }),
    stop: () => {
      for (const s of subs) s.unSubscribe();
    },
  };
}

/** VP8/H.264 + Opus published at `url`, FFmpeg already sending, with the media it sends counted. */
async function publishCounted(url: string, codec: "VP8" | "H264"): Promise<{ pub: WhipClient; sent: ReturnType<typeof sentMedia> }> {
  const pub = await WhipClient.create({ video: { codec }, audio: true });
  publishers.push(pub);
  pub.startSource(SOURCE);
  // Media flowing before the POST, so the files can cover the whole session.
  await waitFor(() => pub.rtpIn.video > 0 && pub.rtpIn.audio > 0, {
    timeoutMs: 10_000,
    what: "FFmpeg's first RTP packets",
    describe: () => `rtp in ${JSON.stringify(pub.rtpIn)}${pub.sourceFailure ? `; ${pub.sourceFailure}` : ""}`,
  });
  // Counting from before the POST: the first packet that can leave is counted.
  const sent = sentMedia(pub);
  await pub.publish(url);
  return { pub, sent };
}

/** Duration as a player sees it: the container's, or frames / frame rate for raw H.264. */
function durationOf(p: ProbeResult): number {
  const s = p.streams[0]!;
  if (p.format.format_name === "h264") {
    const [num, den] = (s.r_frame_rate ?? "0/1").split("/").map(Number) as [number, number];
    return Number(s.nb_read_frames) / (num / den);
  }
  const d = durationSeconds(p);
  if (d === undefined) throw new Error(`ffprobe gives no duration for ${p.format.filename}`);
  return d;
}

const publishers: WhipClient[] = [];
afterEach(async () => {
  await Promise.all(publishers.splice(0).map((p) => p.close()));
});

/**
 * The per-track files of a room ({room}_{kind}{index}_{unixSeconds}.{ext}), sorted. Only these:
 * a file merged from them for playback may sit beside them and is not what these tests check.
 */
function recordings(dir: string, room: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${room}_video`) || f.startsWith(`${room}_audio`))
    .sort();
}

describe("recording", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ RECORD_ENABLED: "true", ADMIN_TOKEN: "admin" });
  });
  afterAll(() => server.close());

  it.each([
    { video: "VP8" as const, ext: "ivf", codec: "vp8", end: "delete" },
    { video: "H264" as const, ext: "h264", codec: "h264", end: "admin close" },
  ])(
    "$video + Opus: files named as the seed, ffprobe opens them with the right codec, size and duration ($end)",
    async ({ video, ext, codec, end }) => {
      const room = `rec${video}`;
      const { pub, sent } = await publishCounted(server.whipUrl(room), video);
      await sleep(4000);
      // What was sent before the session is ended has been recorded; what was sent until it had
      // ended is all that can have been: the files are checked against both.
      const before = sent.seconds();
      if (end === "delete") await pub.close();
      else {
        const res = await fetch(`${server.url}/api/admin/rooms/${room}/close`, { method: "POST", headers: { Authorization: "Bearer admin" } });
        expect(res.status).toBe(200);
      }
      const after = sent.seconds();
      sent.stop();
      // Four seconds of wall clock carry well over two of media, however busy the machine.
      expect(before.video).toBeGreaterThan(2);
      expect(before.audio).toBeGreaterThan(2);
      await sleep(300);

      const files = recordings(server.recordDir, room);
      expect(files).toHaveLength(2);
      const [audioFile, videoFile] = files as [string, string];
      expect(videoFile).toMatch(new RegExp(`^${room}_video0_\\d{10}\\.${ext}$`));
      expect(audioFile).toMatch(new RegExp(`^${room}_audio0_\\d{10}\\.ogg$`));

      const v = await probe(path.join(server.recordDir, videoFile));
      const vStream = streamOf(v, "video");
      expect(v.streams).toHaveLength(1);
      expect(vStream).toMatchObject({ codec_name: codec, width: 320, height: 240 });
      const vFrames = Number(vStream.nb_read_frames);
      const vDuration = durationOf(v);
      // The encoder runs at 30 fps: the timestamps must span what the frames say (within 5 %),
      // and the file covers the session from its first keyframe (≤ 0.5 s GOP) to the end.
      expect(Math.abs(vDuration - vFrames / 30) / (vFrames / 30)).toBeLessThan(0.05);
      expect(vDuration).toBeGreaterThan(before.video - 1.0);
      expect(vDuration).toBeLessThan(after.video + 0.2);

      const a = await probe(path.join(server.recordDir, audioFile));
      expect(a.streams).toHaveLength(1);
      expect(streamOf(a, "audio")).toMatchObject({ codec_name: "opus", channels: 2 });
      // ffprobe counts the 80 ms Opus pre-skip in an Ogg file's duration: take it off to get the
      // audio that plays, which runs from the first packet sent to the end of the last one (its
      // timestamp + 20 ms). Compared with the audio sent, not with the wall clock: the audio may
      // start before publish() resolves, and FFmpeg's -re clock drifts from the wall clock on a
      // busy machine. Fails on a duration more than 10 % off, and on more audio than was sent.
      const aPlayed = durationOf(a) - OPUS_PRE_SKIP_S;
      expect(Math.abs(aPlayed - before.audio) / before.audio).toBeLessThan(0.1);
      expect(aPlayed).toBeLessThan(after.audio + OPUS_FRAME_S + 0.05);

      // Listed by the API, newest first, and served.
      const list = (await (await fetch(`${server.url}/api/records`)).json()) as { name: string; size: number }[];
      expect(list.map((r) => r.name)).toEqual(expect.arrayContaining(files));
      const served = await fetch(`${server.url}/records/${videoFile}`);
      expect(served.status).toBe(200);
      expect((await served.arrayBuffer()).byteLength).toBe(statSync(path.join(server.recordDir, videoFile)).size);
    },
    30_000,
  );

  it("an unusable directory stops the recording, not the room", async () => {
    // A path under a regular file cannot be created, whoever runs the test (root ignores modes).
    const parent = mkdtempSync(path.join(tmpdir(), "bad-records-"));
    writeFileSync(path.join(parent, "file"), "");
    const ro = await startServer({ RECORD_ENABLED: "true", RECORD_DIR: path.join(parent, "file", "records") });
    try {
      const { client: pub } = await publishTestStream(ro.whipUrl("ro"), { video: { codec: "VP8" }, audio: true, source: SOURCE });
      publishers.push(pub);
      await sleep(2000);
      const rooms = (await (await fetch(`${ro.url}/api/rooms`)).json()) as { name: string }[];
      expect(rooms.map((r) => r.name)).toEqual(["ro"]);
      const metrics = await (await fetch(`${ro.url}/metrics`)).text();
      expect(Number(/^live_recording_errors_total (\d+)/m.exec(metrics)?.[1])).toBe(2);
      expect(Number(/^live_rtp_packets_total\{room="ro"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(50);
    } finally {
      await ro.close();
    }
  }, 30_000);

  it("a full disk (/dev/full) stops the recording with a metric while the room goes on", async () => {
    // A records directory whose files all land on /dev/full: the first write fails with ENOSPC.
    const dir = mkdtempSync(path.join(tmpdir(), "full-records-"));
    const full = await startServer({ RECORD_ENABLED: "true", RECORD_DIR: dir });
    try {
      const stamp = Math.floor(Date.now() / 1000);
      for (let s = stamp; s < stamp + 30; s++) {
        for (const name of [`full_video0_${s}.ivf`, `full_audio0_${s}.ogg`]) {
          execFileSync("ln", ["-s", "/dev/full", path.join(dir, name)]);
        }
      }
      const { client: pub } = await publishTestStream(full.whipUrl("full"), { video: { codec: "VP8" }, audio: true, source: SOURCE });
      publishers.push(pub);
      await sleep(2500);
      const metrics = await (await fetch(`${full.url}/metrics`)).text();
      expect(Number(/^live_recording_errors_total (\d+)/m.exec(metrics)?.[1])).toBe(2);
      expect(Number(/^live_recordings_active (\d+)/m.exec(metrics)?.[1])).toBe(0);
      const rooms = (await (await fetch(`${full.url}/api/rooms`)).json()) as { name: string }[];
      expect(rooms.map((r) => r.name)).toEqual(["full"]);
    } finally {
      await full.close();
    }
  }, 30_000);
});

describe("SIGTERM", () => {
  it("finalises every recording before the process exits", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "sigterm-records-"));
    const server = await startServerProcess({ RECORD_ENABLED: "true", RECORD_DIR: dir });
    try {
      const { sent } = await publishCounted(`${server.base}/api/whip/publish/term`, "VP8");
      await sleep(3000);
      // Everything sent before the signal must be in the files (see sentMedia).
      const before = sent.seconds();
      sent.stop();
      expect(before.video).toBeGreaterThan(1.5);
      expect(before.audio).toBeGreaterThan(1.5);
      const exited = new Promise<number | null>((r) => server.child.once("exit", (code) => r(code)));
      server.child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const files = recordings(dir, "term");
      expect(files).toHaveLength(2);
      for (const f of files) {
        const p = await probe(path.join(dir, f));
        // Video from its first keyframe (≤ 0.5 s GOP), with the same second of slack as above.
        const kind = f.startsWith("term_video") ? "video" : "audio";
        expect(durationOf(p)).toBeGreaterThan(before[kind] - 1.0);
      }
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await server.kill();
      if (server.stderr().includes("Error")) console.error(server.stderr());
    }
  }, 40_000);
});

describe("SIGKILL", () => {
  it.each(["VP8", "H264"] as const)(
    "leaves %s + Opus recordings readable up to about the last second written",
    async (codec) => {
      const dir = mkdtempSync(path.join(tmpdir(), "sigkill-records-"));
      const server = await startServerProcess({ RECORD_ENABLED: "true", RECORD_DIR: dir });
      try {
        const { sent } = await publishCounted(`${server.base}/api/whip/publish/kill`, codec);
        await sleep(4000);
        const before = sent.seconds();
        sent.stop();
        expect(before.video).toBeGreaterThan(2);
        expect(before.audio).toBeGreaterThan(2);
        const exited = new Promise<NodeJS.Signals | null>((r) => server.child.once("exit", (_code, signal) => r(signal)));
        server.child.kill("SIGKILL");
        expect(await exited).toBe("SIGKILL");
        const files = recordings(dir, "kill");
        expect(files).toHaveLength(2);
        for (const f of files) {
          // Nothing was closed: the demuxers must still read every frame that reached the kernel.
          // Frames in the recorder's reorder buffer (≤ 1 s) may be lost; IVF headers are rewritten once a second.
          const p = await probe(path.join(dir, f));
          const kind = f.startsWith("kill_video") ? "video" : "audio";
          expect(p.streams[0]?.codec_name).toBe(kind === "audio" ? "opus" : codec === "VP8" ? "vp8" : "h264");
          expect(durationOf(p)).toBeGreaterThan(before[kind] - 2);
        }
        rmSync(dir, { recursive: true, force: true });
      } finally {
        await server.kill();
        if (server.stderr().includes("Error")) console.error(server.stderr());
      }
    },
    40_000,
  );
});
