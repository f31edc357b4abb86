// The small helpers: ports, ffprobe, requirement gates, FFmpeg source lifecycle.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { resolveFfmpeg } from "../../src/bridges/ffmpeg-path.js";
import { pidAlive, startFfmpegSource } from "./ffmpeg-source.js";
import { durationSeconds, probe, streamOf } from "./ffprobe.js";
import { bindUdp, closeUdp, freePorts, freeTcpPort, freeUdpPort, udpPort, waitFor } from "./net.js";
import { BROWSER_SUITES_ENV, checkRequirement, MissingRequirementError, requireOrSkip } from "./requirements.js";

describe("net", () => {
  it("hands out free UDP and TCP ports on 127.0.0.1", async () => {
    const u = await freeUdpPort();
    const t = await freeTcpPort();
    expect(u).toBeGreaterThan(1023);
    expect(t).toBeGreaterThan(1023);
    const s = await bindUdp(u); // still free
    expect(udpPort(s)).toBe(u);
    await closeUdp(s);
    await closeUdp(s); // twice is fine
    expect(new Set(await freePorts(5)).size).toBe(5);
  });

  it("waitFor says what it waited for", async () => {
    await expect(waitFor(() => false, { timeoutMs: 100, what: "the moon", describe: () => "still night" })).rejects.toThrow(
      "timed out after 100 ms waiting for the moon (still night)",
    );
  });
});

describe("requirements", () => {
  const saved = {
    CI: process.env.CI,
    REQUIRE_ALL: process.env.REQUIRE_ALL,
    CHROMIUM_PATH: process.env.CHROMIUM_PATH,
    [BROWSER_SUITES_ENV]: process.env[BROWSER_SUITES_ENV],
  };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    checkRequirement("chromium", true);
  });

  it("a missing tool skips with the reason in the title, or fails under CI", () => {
    process.env.CHROMIUM_PATH = "/nonexistent/chromium";
    delete process.env[BROWSER_SUITES_ENV];
    delete process.env.CI;
    delete process.env.REQUIRE_ALL;
    expect(checkRequirement("chromium", true).ok).toBe(false);
    const gate = requireOrSkip("chromium");
    expect(gate.ok).toBe(false);
    expect(gate.title("browser suite")).toBe("browser suite [skipped: needs chromium: CHROMIUM_PATH=/nonexistent/chromium is not an executable file]");
    process.env.CI = "true";
    expect(() => requireOrSkip("chromium")).toThrow(MissingRequirementError);
    expect(() => requireOrSkip("chromium")).toThrow(/required test tool\(s\) missing with CI=true: chromium/);
  });

  it("browser suites turned off for a run skip by name, even under CI", () => {
    process.env[BROWSER_SUITES_ENV] = "off";
    process.env.CI = "true";
    checkRequirement("chromium", true);
    const gate = requireOrSkip("chromium");
    expect(gate.ok).toBe(false);
    expect(gate.title("browser suite")).toBe(`browser suite [skipped: needs chromium: browser suites are off in this run (${BROWSER_SUITES_ENV}=off)]`);
  });

  it("a present tool runs under its plain title", () => {
    const gate = requireOrSkip("ffprobe");
    expect(gate).toMatchObject({ ok: true, reason: "" });
    expect(gate.title("probe suite")).toBe("probe suite");
  });
});

const ffmpeg = requireOrSkip("ffmpeg", "ffprobe");

describe.skipIf(!ffmpeg.ok)(ffmpeg.title("ffprobe and the FFmpeg source"), () => {
  const dir = mkdtempSync(path.join(tmpdir(), "helpers-test-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("probe() returns streams, format and counted frames", async () => {
    const file = path.join(dir, "clip.ivf");
    const res = spawnSync(resolveFfmpeg(), [
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=320x240:rate=30",
      "-t",
      "2",
      "-c:v",
      "libvpx",
      "-deadline",
      "realtime",
      "-y",
      file,
    ]);
    expect(res.status).toBe(0);
    const r = await probe(file);
    const v = streamOf(r, "video");
    expect(v).toMatchObject({ codec_name: "vp8", width: 320, height: 240, nb_read_frames: "60" });
    expect(r.format.format_name).toBe("ivf");
    expect(durationSeconds(r, v)).toBeCloseTo(2, 1);
    expect(() => streamOf(r, "audio")).toThrow(/no audio stream .*video:vp8/);
    await expect(probe(path.join(dir, "missing.ivf"))).rejects.toThrow(/ffprobe .*missing\.ivf failed: .*No such file/);
  });

  it("the source sends RTP until close(), which ends FFmpeg (SIGTERM) and is idempotent", async () => {
    const video = await bindUdp();
    const audio = await bindUdp();
    let v = 0;
    let a = 0;
    video.on("message", () => v++);
    audio.on("message", () => a++);
    const src = startFfmpegSource({ video: { port: udpPort(video), codec: "VP9" }, audio: { port: udpPort(audio) } });
    try {
      await waitFor(() => v > 20 && a > 10, { timeoutMs: 10_000, what: "RTP from FFmpeg", describe: () => `v=${v} a=${a} ${src.stderr()}` });
      expect(src.running()).toBe(true);
      expect(src.video).toMatchObject({ codec: "VP9", clockRate: 90000, fmtp: "profile-id=0" });
    } finally {
      await Promise.all([src.close(), src.close()]);
      await closeUdp(video);
      await closeUdp(audio);
    }
    expect(src.running()).toBe(false);
    expect(pidAlive(src.pid)).toBe(false);
    // FFmpeg catches SIGTERM, finishes its outputs and exits with 255.
    const exit = await src.exited;
    expect(exit.code === 255 || exit.signal === "SIGTERM").toBe(true);
  });

  it("a source that fails reports FFmpeg's own words", async () => {
    const src = startFfmpegSource({ video: { port: 9, codec: "VP8", width: -5 } });
    const exit = await src.exited;
    expect(exit.code).not.toBe(0);
    expect(src.stderr()).not.toBe("");
    await src.close();
  });
});
