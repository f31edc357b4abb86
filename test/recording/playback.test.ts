// Playable recordings: a published session's track files become one .webm/.mp4 with both
// streams in sync (real werift publisher, real FFmpeg, real ffprobe), listed and served by the
// records API; and the merge queue's rules (one FFmpeg at a time, argument arrays, timeout,
// close) with a stand-in binary.
import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveFfprobe } from "../../src/bridges/ffmpeg-path.js";
import { listRecords } from "../../src/http/records.js";
import { parseRecordName } from "../../src/recording/names.js";
import {
  averageFrameRate,
  buildPlaybackArgs,
  inputDelays,
  oggOpusPreSkip,
  PlaybackQueue,
  sessionSeconds,
  trackOffsets,
  type PlaybackJob,
} from "../../src/recording/playback.js";
import type { FinishedRecording } from "../../src/recording/recorder.js";
import { durationSeconds, probe, streamOf } from "../helpers/ffprobe.js";
import { sleep, waitFor } from "../helpers/net.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { publishTestStream } from "../helpers/whip-client.js";

const quietLog = { info: () => {}, warn: () => {}, error: () => {} };

function info(kind: "video" | "audio", codec: FinishedRecording["codec"], startedAt: number, frames = 90, durationSeconds = 3): FinishedRecording {
  return { kind, codec, startedAt, frames, durationSeconds };
}

describe("playback job arguments", () => {
  const video = { file: "/rec/demo_video0_1710000001.ivf", info: info("video", "VP8", 1_710_000_001_400) };
  const audio = { file: "/rec/demo_audio0_1710000001.ogg", info: info("audio", "opus", 1_710_000_001_000) };

  it("VP8 + Opus: both copied into WebM, the later video delayed by the first-frame difference less the Opus pre-skip", () => {
    const args = buildPlaybackArgs({ room: "demo", video, audio }, "/rec/.demo_1710000001.webm.part", 0.08);
    expect(args).toEqual([
      "-hide_banner",
      "-nostdin",
      "-nostats",
      "-loglevel",
      "error",
      "-y",
      "-itsoffset",
      "0.320",
      "-f",
      "ivf",
      "-i",
      video.file,
      "-f",
      "ogg",
      "-i",
      audio.file,
      "-map",
      "0:v:0",
      "-map",
      "1:a:0",
      "-c:v",
      "copy",
      "-c:a",
      "copy",
      "-f",
      "webm",
      "/rec/.demo_1710000001.webm.part",
    ]);
    // Video less than the pre-skip behind: the audio is delayed by the rest instead.
    const close = { ...video, info: { ...video.info, startedAt: audio.info.startedAt + 30 } };
    expect(inputDelays({ room: "demo", video: close, audio }, 0.08)).toEqual({ video: 0, audio: expect.closeTo(0.05, 6) });
  });

  it("H.264 + Opus: Annex B read at its measured frame rate and delayed by setts, Opus to AAC, MP4 with faststart", () => {
    const h264 = { file: "/rec/demo_video0_1710000001.h264", info: info("video", "H264", 1_710_000_001_400, 75, 2.5) };
    const joined = buildPlaybackArgs({ room: "demo", video: h264, audio }, "out", 0.08).join(" ");
    expect(joined).toContain("-fflags +genpts -f h264 -framerate 30 -i /rec/demo_video0_1710000001.h264 -f ogg -i /rec/demo_audio0_1710000001.ogg");
    // AAC is decoded from Opus, so the pre-skip needs no correction.
    expect(joined).toContain("-c:v copy -bsf:v setts=ts=TS+0.400/TB -c:a aac -b:a 128k -movflags +faststart -f mp4 out");
    const late = { ...audio, info: { ...audio.info, startedAt: 1_710_000_001_650 } };
    expect(buildPlaybackArgs({ room: "demo", video: h264, audio: late }, "out").join(" ")).toContain("-itsoffset 0.250 -f ogg -i");
  });

  it("one track alone is remuxed; names, offsets and frame rates come from the files", () => {
    expect(buildPlaybackArgs({ room: "demo", audio }, "o")).toEqual(expect.arrayContaining(["-map", "0:a:0", "-c:a", "copy", "webm"]));
    expect(trackOffsets({ room: "demo", video })).toEqual({ video: 0, audio: 0 });
    expect(sessionSeconds({ room: "demo", video: { ...video, file: "/rec/demo_video0_1710000002.ivf" }, audio })).toBe(1_710_000_001);
    expect(averageFrameRate(info("video", "H264", 1, 1, 0))).toBe(30);
    expect(averageFrameRate(info("video", "H264", 1, 50, 2))).toBe(25);
    expect(() => buildPlaybackArgs({ room: "demo" }, "o")).toThrow();
  });
});

describe("record names and the playback link", () => {
  it("parses track and merged names, nothing else", () => {
    expect(parseRecordName("demo_video0_1710000001.ivf")).toEqual({
      room: "demo",
      seconds: 1710000001,
      playback: false,
      kind: "video",
      index: 0,
      extension: "ivf",
    });
    expect(parseRecordName("my_room_1710000001.webm")).toEqual({ room: "my_room", seconds: 1710000001, playback: true, extension: "webm" });
    expect(parseRecordName("demo_1710000001.mp4")?.playback).toBe(true);
    for (const bad of [".demo_1710000001.webm.part", "demo_1710000001.ivf", "demo_video0_1.webm.txt", "../demo_1.webm", "demo_x.mp4", "demo.webm"]) {
      expect(parseRecordName(bad), bad).toBeUndefined();
    }
  });

  it("each track file of a session links to the session's merged file; other sessions do not", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "playback-names-"));
    try {
      for (const name of [
        "demo_video0_1710000001.ivf",
        "demo_audio0_1710000002.ogg",
        "demo_1710000001.webm",
        "demo_video0_1710000100.ivf",
        "other_video0_1710000001.ivf",
        ".demo_1710000100.webm.part",
      ])
        writeFileSync(path.join(dir, name), "x");
      const list = await listRecords(dir);
      const byName = new Map(list.map((r) => [r.name, r]));
      expect(byName.has(".demo_1710000100.webm.part")).toBe(false);
      expect(byName.get("demo_video0_1710000001.ivf")?.playback).toBe("/records/demo_1710000001.webm");
      expect(byName.get("demo_audio0_1710000002.ogg")?.playback).toBe("/records/demo_1710000001.webm");
      expect(byName.get("demo_1710000001.webm")?.playback).toBe("/records/demo_1710000001.webm");
      expect(byName.get("demo_video0_1710000100.ivf")?.playback).toBeUndefined();
      expect(byName.get("other_video0_1710000001.ivf")?.playback).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("playback queue", () => {
  let dir: string;
  let fake: string;
  let log: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "playback-queue-"));
    log = path.join(dir, "runs.log");
    fake = path.join(dir, "fake-ffmpeg");
    // A stand-in FFmpeg: logs its pid, start and end, sleeps as long as FAKE_SLEEP says, writes
    // its last argument (the output). `exec sleep` keeps one process, so a kill ends it all.
    writeFileSync(
      fake,
      `#!/bin/sh\nfor last; do :; done\necho "start $$ $(date +%s%N)" >> "${log}"\n` +
        `if [ -f "${dir}/hang" ]; then exec sleep 60; fi\nsleep 0.3\necho data > "$last"\necho "end $$ $(date +%s%N)" >> "${log}"\n`,
    );
    chmodSync(fake, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const job = (room: string, s: number): PlaybackJob => ({
    room,
    video: { file: path.join(dir, `${room}_video0_${s}.ivf`), info: info("video", "VP8", s * 1000) },
    audio: { file: path.join(dir, `${room}_audio0_${s}.ogg`), info: info("audio", "opus", s * 1000) },
  });

  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it("runs one FFmpeg at a time and renames each output into place", async () => {
    const q = new PlaybackQueue({ dir, log: quietLog, ffmpegPath: fake });
    const outs = await Promise.all([q.enqueue(job("a", 100)), q.enqueue(job("b", 200)), q.enqueue(job("c", 300))]);
    expect(outs).toEqual([path.join(dir, "a_100.webm"), path.join(dir, "b_200.webm"), path.join(dir, "c_300.webm")]);
    const events = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(" ")[0]);
    expect(events).toEqual(["start", "end", "start", "end", "start", "end"]);
    expect(readdirSync(dir).filter((f) => f.endsWith(".part"))).toEqual([]);
    // A second session in the same second never overwrites the first.
    expect(await q.enqueue(job("a", 100))).toBe(path.join(dir, "a_101.webm"));
    await q.close();
    expect(await q.enqueue(job("d", 400))).toBeUndefined();
  });

  it("kills an FFmpeg that overruns its time limit, and close() kills the running one and cancels the rest", async () => {
    writeFileSync(path.join(dir, "hang"), "");
    writeFileSync(log, "");
    const q = new PlaybackQueue({ dir, log: quietLog, ffmpegPath: fake, timeoutMs: 500 });
    const t0 = Date.now();
    expect(await q.enqueue(job("slow", 500))).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(5000);
    const firstPid = Number(readFileSync(log, "utf8").trim().split(" ")[1]);
    expect(alive(firstPid)).toBe(false);
    expect(q.failed).toBe(1);

    const q2 = new PlaybackQueue({ dir, log: quietLog, ffmpegPath: fake });
    writeFileSync(log, "");
    const running = q2.enqueue(job("hang", 600));
    const waiting = q2.enqueue(job("next", 700));
    await waitFor(() => readFileSync(log, "utf8").includes("start"), { what: "the stand-in to start" });
    const pid = Number(readFileSync(log, "utf8").trim().split(" ")[1]);
    expect(alive(pid)).toBe(true);
    await q2.close();
    expect(alive(pid)).toBe(false);
    expect(await running).toBeUndefined();
    expect(await waiting).toBeUndefined();
    expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(1);
    expect(existsSync(path.join(dir, "hang_600.webm"))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith(".part"))).toEqual([]);
    rmSync(path.join(dir, "hang"));
  });
});

const need = requireOrSkip("ffmpeg", "ffprobe");

/** First packet time and end of the last packet (pts + duration) per stream index, as ffprobe reads them. */
function packetSpans(file: string): Promise<Map<number, { start: number; end: number }>> {
  return new Promise((resolve, reject) => {
    execFile(
      resolveFfprobe(),
      ["-v", "error", "-show_entries", "packet=stream_index,pts_time,duration_time", "-of", "csv=p=0", file],
      { maxBuffer: 32 * 1024 * 1024, encoding: "utf8" },
      (err, stdout) => {
        if (err) return reject(err);
        const spans = new Map<number, { start: number; end: number }>();
        for (const line of stdout.trim().split("\n")) {
          const [index, pts, duration] = line.split(",").map(Number);
          if (!Number.isFinite(pts)) continue;
          const end = pts + (Number.isFinite(duration) ? duration : 0);
          const s = spans.get(index);
          if (!s) spans.set(index, { start: pts, end });
          else s.end = Math.max(s.end, end);
        }
        resolve(spans);
      },
    );
  });
}

describe.skipIf(!need.ok)(need.title("recorded sessions become one playable file"), () => {
  let server: TestServer;

  /**
   * Publishes FFmpeg's test source for 3 s. Sync is judged by arrival times, which only mean
   * something when the source keeps real time: on a machine so busy that FFmpeg falls behind
   * (other suites share its two cores), the session is recorded again, up to three times.
   */
  async function recordSession(prefix: string, codec: "VP8" | "H264"): Promise<{ room: string; pace: number }> {
    for (let attempt = 1; ; attempt++) {
      const room = `${prefix}${attempt}`;
      const { client } = await publishTestStream(server.whipUrl(room), {
        video: { codec },
        audio: true,
        source: { gop: 15, width: 320, height: 240 },
      });
      let pace = 0;
      try {
        const n0 = client.rtpIn.audio;
        const t0 = performance.now();
        await sleep(3000);
        // One Opus packet per 20 ms when FFmpeg keeps up.
        pace = ((client.rtpIn.audio - n0) * 20) / (performance.now() - t0);
      } finally {
        await client.close();
      }
      if (pace >= 0.9 || attempt === 3) return { room, pace };
    }
  }

  beforeAll(async () => {
    server = await startServer({ RECORD_ENABLED: "true" });
  });
  afterAll(async () => {
    await server?.close();
    server?.removeRecordDir();
  });

  it.each([
    { codec: "VP8" as const, ext: "webm", video: "vp8", audio: "opus" },
    { codec: "H264" as const, ext: "mp4", video: "h264", audio: "aac" },
  ])(
    "$codec + Opus → .$ext with both streams, in sync, listed with a playback link and served",
    async ({ codec, ext, video, audio }) => {
      const { room, pace } = await recordSession(`play${codec}`, codec);

      type Entry = { name: string; url: string; playback?: string };
      let list: Entry[] = [];
      await expect
        .poll(
          async () => {
            list = (await (await fetch(`${server.url}/api/records`)).json()) as Entry[];
            return list.filter((r) => r.name.startsWith(`${room}_`)).map((r) => r.playback);
          },
          { timeout: 15_000, interval: 200 },
        )
        .toEqual([expect.any(String), expect.any(String), expect.any(String)]);
      const mine = list.filter((r) => r.name.startsWith(`${room}_`));
      const merged = mine.find((r) => r.name.endsWith(`.${ext}`));
      expect(merged?.name).toMatch(new RegExp(`^${room}_\\d{10}\\.${ext}$`));
      // Every file of the session points at the merged one.
      expect(new Set(mine.map((r) => r.playback))).toEqual(new Set([`/records/${merged!.name}`]));

      const file = path.join(server.recordDir, merged!.name);
      const p = await probe(file);
      const v = streamOf(p, "video");
      const a = streamOf(p, "audio");
      expect(v.codec_name).toBe(video);
      expect(a.codec_name).toBe(audio);
      expect([v.width, v.height]).toEqual([320, 240]);
      expect(Number(v.nb_read_frames)).toBeGreaterThan(30);

      // The track files as recorded.
      const trackFile = (kind: string) => path.join(server.recordDir, mine.find((r) => r.name.includes(`_${kind}0_`))!.name);
      const srcAudio = durationSeconds(await probe(trackFile("audio")))! - oggOpusPreSkip(trackFile("audio"));
      const srcVideoProbe = await probe(trackFile("video"));
      const srcVideo = codec === "H264" ? Number(srcVideoProbe.streams[0].nb_read_frames) / 30 : durationSeconds(srcVideoProbe)!;

      const spans = await packetSpans(file);
      const vSpan = spans.get(v.index)!;
      const aSpan = spans.get(a.index)!;
      const note = `source pace ${pace.toFixed(2)}; video ${vSpan.start}–${vSpan.end} s (recorded ${srcVideo} s), audio ${aSpan.start}–${aSpan.end} s (recorded ${srcAudio} s)`;
      // Both tracks kept their length: the merged durations agree with the recorded ones within 5 %.
      expect(Math.abs(vSpan.end - vSpan.start - srcVideo) / srcVideo, note).toBeLessThan(0.05);
      expect(Math.abs(aSpan.end - Math.max(0, aSpan.start) - srcAudio) / srcAudio, note).toBeLessThan(0.05);
      // In sync: the video starts where its first keyframe came (after the audio, by less than the
      // 0.5 s GOP plus setup) and both end together, when the publisher left.
      expect(vSpan.start, note).toBeGreaterThanOrEqual(0);
      expect(vSpan.start, note).toBeLessThan(1);
      expect(Math.abs(vSpan.end - aSpan.end) / aSpan.end, note).toBeLessThan(0.05);
      expect(Math.abs(durationSeconds(p)! - aSpan.end) / aSpan.end, note).toBeLessThan(0.05);

      // Served like any recording, with ranges, under its own content type.
      const served = await fetch(`${server.url}${merged!.url}`, { headers: { Range: "bytes=0-99" } });
      expect(served.status).toBe(206);
      expect(served.headers.get("content-type")).toBe(ext === "webm" ? "video/webm" : "video/mp4");
      await served.arrayBuffer();
    },
    60_000,
  );
});
