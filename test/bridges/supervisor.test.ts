// The FFmpeg supervisor with real FFmpeg (lavfi sources, files, an SDP input nobody feeds), and
// small shell and Node scripts standing in for a binary that fails, hangs or exits on cue.
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { resolveFfmpeg } from "../../src/bridges/ffmpeg-path.js";
import type { JobSpec } from "../../src/bridges/job-spec.js";
import { FORBIDDEN_PROTOCOLS, withWhitelist } from "../../src/bridges/protocols.js";
import { Supervisor } from "../../src/bridges/supervisor.js";
import { pidAlive } from "../helpers/ffmpeg-source.js";
import { memoryLog } from "../helpers/log.js";
import { freeUdpPort, sleep, waitFor } from "../helpers/net.js";
import { requireOrSkip } from "../helpers/requirements.js";

const dir = mkdtempSync(path.join(tmpdir(), "supervisor-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

/**
 * A Node script run as the "FFmpeg" binary (the supervisor's FFmpeg arguments land in its argv,
 * unread). Each run appends a line to `<name>.runs`, so a script can act on its run number (`run`).
 */
function nodeScript(name: string, body: string): string {
  const file = path.join(dir, `${name}.mjs`);
  const runs = path.join(dir, `${name}.runs`);
  writeFileSync(
    file,
    `#!${process.execPath}\n` +
      `import { appendFileSync, readFileSync } from "node:fs";\n` +
      `appendFileSync(${JSON.stringify(runs)}, "x\\n");\n` +
      `const run = readFileSync(${JSON.stringify(runs)}, "utf8").length / 2;\n` +
      `${body}\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

/** Runs forever (until signalled). */
const HANG = "setInterval(() => undefined, 1000);";

/** A live lavfi source written as MPEG-TS to a file: progress reports bytes. */
function lavfiJob(id: string, extra: Partial<JobSpec> = {}): JobSpec {
  return {
    id,
    kind: "test",
    protocols: ["file"],
    args: () => ["-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-c:v", "mpeg2video", "-f", "mpegts", "-y", path.join(dir, `${id}.ts`)],
    ...extra,
  };
}

describe("withWhitelist", () => {
  it("puts the job's whitelist before every input and keeps outputs' own", () => {
    const args = withWhitelist(["-i", "a.sdp", "-i", "b.sdp", "-c", "copy", "-protocol_whitelist", "file", "out.m3u8"], ["file", "udp", "rtp"]);
    expect(args).toEqual([
      "-protocol_whitelist",
      "file,udp,rtp",
      "-i",
      "a.sdp",
      "-protocol_whitelist",
      "file,udp,rtp",
      "-i",
      "b.sdp",
      "-c",
      "copy",
      "-protocol_whitelist",
      "file",
      "out.m3u8",
    ]);
    // An input's own whitelist is replaced, never doubled.
    expect(withWhitelist(["-protocol_whitelist", "rtmp", "-i", "x"], ["tcp"])).toEqual(["-protocol_whitelist", "tcp", "-i", "x"]);
  });

  it("refuses concat, subfile, pipe and data anywhere", () => {
    for (const p of ["concat", "subfile", "pipe", "data"]) {
      expect(FORBIDDEN_PROTOCOLS).toContain(p);
      expect(() => withWhitelist(["-i", "x"], ["file", p])).toThrow(/may never be whitelisted/);
      expect(() => withWhitelist(["-i", "x", "-protocol_whitelist", `file,${p}`, "out"], ["file"])).toThrow(/may never be whitelisted/);
    }
    expect(() => withWhitelist(["-i", "x"], [])).toThrow(/at least one/);
    expect(() => withWhitelist(["-i", "x"], ["file,udp"])).toThrow(/invalid protocol name/);
  });
});

describe("Supervisor with scripted processes", () => {
  const sups: Supervisor[] = [];
  const make = (opts: Partial<ConstructorParameters<typeof Supervisor>[0]> & { ffmpegPath: () => string }): Supervisor => {
    const s = new Supervisor({ log: memoryLog(), ...opts });
    sups.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(sups.splice(0).map((s) => s.closeAll()));
  });
  const spec = (id: string, extra: Partial<JobSpec> = {}): JobSpec => ({ id, kind: "test", protocols: ["file"], args: () => [], ...extra });

  it("maxJobs refuses a start beyond the limit, counting it and spawning nothing, and frees the place when a job ends", async () => {
    const hang = nodeScript("hang-limit", HANG);
    const sup = make({ ffmpegPath: () => hang, maxJobs: 2 });
    const a = sup.start(spec("a"));
    sup.start(spec("b"));
    expect(() => sup.start(spec("c"))).toThrow(/job limit reached \(2 running\)/);
    expect(sup.rejectedTotal).toBe(1);
    expect(sup.list().map((j) => j.id)).toEqual(["a", "b"]);
    await waitFor(() => sup.pids().length === 2, { timeoutMs: 5000, what: "two processes" });
    await a.stop();
    const c = sup.start(spec("c"));
    await waitFor(() => c.pid !== undefined, { timeoutMs: 5000, what: "c spawned" });
    expect(sup.pids()).toHaveLength(2);
  });

  it("an id already running is refused; Supervisor.stop of an unknown id is false", async () => {
    const hang = nodeScript("hang-dup", HANG);
    const sup = make({ ffmpegPath: () => hang });
    const job = sup.start(spec("dup"));
    expect(() => sup.start(spec("dup"))).toThrow(/already running/);
    await waitFor(() => job.pid !== undefined, { timeoutMs: 5000, what: "spawned" });
    expect(sup.pids()).toEqual([job.pid]);
    expect(await sup.stop("nope")).toBe(false);
    expect(await sup.stop("dup")).toBe(true);
    expect(job.state).toBe("stopped");
    // The id is free again once the job has ended.
    sup.start(spec("dup"));
  });

  it("restart on-failure: a clean exit ends the job as stopped, a failing one is restarted", async () => {
    const clean = nodeScript("clean", "process.exit(0);");
    const failing = nodeScript("failing", 'console.error("[error] boom " + run); process.exit(1);');
    const sup = make({ ffmpegPath: () => clean, backoff: { initialMs: 20 } });
    const ok = sup.start(spec("clean", { restart: "on-failure" }));
    await ok.done;
    expect(ok.state).toBe("stopped");
    expect(ok.restarts).toBe(0);
    const sup2 = make({ ffmpegPath: () => failing, backoff: { initialMs: 20 } });
    const exits: { code: number | null; reason: string }[] = [];
    const bad = sup2.start(spec("failing", { restart: "on-failure", maxRestarts: 2, onExit: (e) => exits.push({ code: e.code, reason: e.reason }) }));
    await bad.done;
    expect(bad.state).toBe("failed");
    expect(bad.restarts).toBe(2);
    expect(exits).toEqual([1, 2, 3].map((n) => ({ code: 1, reason: `boom ${n}` })));
    expect(bad.lastError).toBe("boom 3");
    expect(sup2.restartsTotal).toBe(2);
  });

  it("a run that lasted resetAfterMs resets the back-off to its first step", async () => {
    // Runs 1, 2 and 4 fail at once; run 3 lasts 1.5 s first.
    const flaky = nodeScript("flaky", "if (run === 3) setTimeout(() => process.exit(1), 1500); else process.exit(1);");
    const backoff = { initialMs: 300, maxMs: 10_000, resetAfterMs: 1000 };
    const sup = make({ ffmpegPath: () => flaky, backoff });
    const starts: number[] = [];
    const exits: { at: number; ms: number }[] = [];
    const job = sup.start(spec("flaky", { onSpawn: () => starts.push(performance.now()), onExit: (e) => exits.push({ at: performance.now(), ms: e.ms }) }));
    await waitFor(() => starts.length >= 5, { timeoutMs: 15_000, what: "5 starts" });
    await job.stop();
    // The wait between one run's exit and the next start is the back-off: doubling per failure,
    // back to the first step after a run of resetAfterMs or more (however long a "quick" run took
    // to start on a loaded machine).
    let attempt = 0;
    const expected = exits.slice(0, 4).map((e) => {
      if (e.ms >= backoff.resetAfterMs) attempt = 0;
      return Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt++);
    });
    const delays = starts.slice(1, 5).map((t, i) => t - exits[i]!.at);
    for (const [i, d] of delays.entries()) expect(d, `delay ${i + 1}`).toBeGreaterThanOrEqual(expected[i]! - 10);
    expect(exits[2]!.ms).toBeGreaterThanOrEqual(1500);
    // After the long run: the first step again (1200 ms without the reset).
    expect(expected[2]).toBe(300);
    expect(delays[2]).toBeLessThan(900);
  });

  it("a job waiting to restart stops at once, runs its cleanup once, and never spawns again", async () => {
    const failing = nodeScript("failing-wait", "process.exit(2);");
    const sup = make({ ffmpegPath: () => failing, backoff: { initialMs: 60_000 } });
    let spawns = 0;
    let cleanups = 0;
    const job = sup.start(spec("wait", { onSpawn: () => spawns++, cleanup: () => void cleanups++ }));
    await waitFor(() => job.state === "retrying", { timeoutMs: 5000, what: "retrying" });
    expect(job.lastError).toBe("exited with code 2");
    const t0 = performance.now();
    await Promise.all([job.stop(), job.stop()]);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(job.state).toBe("stopped");
    expect(cleanups).toBe(1);
    await sleep(100);
    expect(spawns).toBe(1);
    expect(sup.list()).toEqual([]);
  });

  it("closeAll during a job's prepare spawns nothing, and ends a process that ignores SIGTERM", async () => {
    const stubborn = nodeScript("stubborn-node", `process.on("SIGTERM", () => undefined); ${HANG}`);
    const sup = make({ ffmpegPath: () => stubborn, stopGraceMs: 400 });
    let spawned = false;
    let cleaned = false;
    const running = sup.start(spec("running"));
    // The script is running once it has noted its run; its SIGTERM handler is set right after.
    await waitFor(() => existsSync(path.join(dir, "stubborn-node.runs")), { timeoutMs: 5000, what: "the script running" });
    await sleep(100);
    const pid = running.pid!;
    const preparing = sup.start(
      spec("preparing", {
        prepare: () => sleep(300),
        onSpawn: () => (spawned = true),
        cleanup: () => void (cleaned = true),
      }),
    );
    const t0 = performance.now();
    await sup.closeAll();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350);
    expect(pidAlive(pid)).toBe(false);
    expect([preparing.state, running.state]).toEqual(["stopped", "stopped"]);
    await preparing.done;
    expect(cleaned).toBe(true);
    await sleep(400); // prepare() has returned by now
    expect(spawned).toBe(false);
    expect(sup.pids()).toEqual([]);
  });
});

const need = requireOrSkip("ffmpeg");

describe.skipIf(!need.ok)(need.title("Supervisor with real FFmpeg"), () => {
  const sups: Supervisor[] = [];
  const make = (opts: ConstructorParameters<typeof Supervisor>[0]): Supervisor => {
    const s = new Supervisor(opts);
    sups.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(sups.splice(0).map((s) => s.closeAll()));
  });

  it("a start with a forbidden protocol spawns nothing", () => {
    const sup = make({ log: memoryLog() });
    expect(() => sup.start({ ...lavfiJob("bad"), protocols: ["file", "concat"] })).toThrow(/concat/);
    expect(sup.list()).toHaveLength(0);
    expect(sup.pids()).toHaveLength(0);
  });

  it("runs a job: running once output advances, bytes counted, stderr logged with the job id; stop ends it by SIGTERM", async () => {
    const log = memoryLog();
    const sup = make({ log });
    const job = sup.start(lavfiJob("ok", { meta: { room: "r1" } }));
    expect(job.state).toBe("starting");
    await job.waitStarted(5000);
    await waitFor(() => job.state === "running" && job.bytesOut > 0, { what: "running with bytes", timeoutMs: 5000 });
    const pid = job.pid!;
    expect(pidAlive(pid)).toBe(true);
    expect(sup.pids()).toEqual([pid]);
    expect(job.info()).toMatchObject({ id: "ok", kind: "test", state: "running", pid, restarts: 0 });
    const t0 = performance.now();
    await job.stop();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(job.state).toBe("stopped");
    expect(pidAlive(pid)).toBe(false);
    expect(sup.list()).toHaveLength(0);
    const states = log.lines.filter((l) => l.msg === "ffmpeg job state").map((l) => l.obj.state);
    expect(states).toEqual(["running", "stopped"]);
    expect(log.lines.every((l) => l.msg !== "ffmpeg job state" || (l.obj.job === "ok" && l.obj.room === "r1"))).toBe(true);
  });

  it("restarts a crashed FFmpeg with back-off doubling up to the cap, keeping the last error", async () => {
    const sup = make({ log: memoryLog(), backoff: { initialMs: 100, maxMs: 400, resetAfterMs: 60_000 } });
    const starts: number[] = [];
    const job = sup.start({
      id: "missing-file",
      kind: "test",
      protocols: ["file"],
      args: () => ["-i", path.join(dir, "does-not-exist.ts"), "-f", "null", "-"],
      onSpawn: () => starts.push(performance.now()),
    });
    await expect(job.waitStarted(3000)).rejects.toThrow(/No such file or directory/);
    await waitFor(() => starts.length >= 5, { timeoutMs: 10_000, what: "5 starts" });
    expect(job.lastError).toMatch(/does-not-exist\.ts: No such file or directory/);
    expect(["retrying", "starting"]).toContain(job.state);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]);
    // Each gap is the back-off plus FFmpeg's own start-up and exit (tens of ms).
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[2]).toBeGreaterThanOrEqual(395);
    expect(gaps[3]).toBeGreaterThanOrEqual(395);
    expect(gaps[3]).toBeLessThan(400 + 1500);
    expect(job.restarts).toBeGreaterThanOrEqual(4);
    await job.stop();
    expect(job.state).toBe("stopped");
  });

  it("the default back-off restarts a SIGKILLed FFmpeg within 2 s", async () => {
    const sup = make({ log: memoryLog() });
    const job = sup.start(lavfiJob("killed"));
    await job.waitStarted(5000);
    const first = job.pid!;
    process.kill(first, "SIGKILL");
    const t0 = performance.now();
    await waitFor(() => job.pid !== undefined && job.pid !== first, { timeoutMs: 2000, what: "a new FFmpeg" });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(job.lastError).toBe("killed by SIGKILL");
    expect(job.restarts).toBe(1);
    expect(pidAlive(first)).toBe(false);
    await waitFor(() => job.state === "running", { timeoutMs: 5000, what: "running again" });
  });

  it("maxRestarts gives up as failed; restart 'never' fails at once", async () => {
    const sup = make({ log: memoryLog(), backoff: { initialMs: 20 } });
    const bad = { kind: "test", protocols: ["file"], args: () => ["-i", path.join(dir, "nope.ts"), "-f", "null", "-"] };
    const limited = sup.start({ id: "limited", maxRestarts: 2, ...bad });
    const never = sup.start({ id: "never", restart: "never", ...bad });
    await Promise.all([limited.done, never.done]);
    expect(limited.state).toBe("failed");
    expect(limited.restarts).toBe(2);
    expect(never.state).toBe("failed");
    expect(never.restarts).toBe(0);
    expect(sup.list()).toHaveLength(0);
  });

  it("stop ends an FFmpeg blocked on an input that sends nothing (second SIGTERM), long before the SIGKILL grace", async () => {
    const port = await freeUdpPort();
    const sdp = path.join(dir, "idle.sdp");
    writeFileSync(
      sdp,
      `v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=idle\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n`,
    );
    const sup = make({ log: memoryLog(), stopGraceMs: 10_000 });
    const job = sup.start({ id: "idle", kind: "test", protocols: ["file", "udp", "rtp"], args: () => ["-i", sdp, "-f", "null", "-"] });
    await job.waitStarted(800); // alive after the probe window: counts as started
    expect(job.state).toBe("starting"); // no output yet
    const pid = job.pid!;
    const t0 = performance.now();
    await job.stop();
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(pidAlive(pid)).toBe(false);
  });

  it("stop escalates to SIGKILL after the grace period for a process that ignores SIGTERM", async () => {
    const stubborn = script("stubborn", "trap '' TERM INT\nwhile :; do sleep 0.05; done");
    const sup = make({ log: memoryLog(), ffmpegPath: () => stubborn, stopGraceMs: 600 });
    const job = sup.start({ id: "stubborn", kind: "test", protocols: ["file"], args: () => [] });
    await job.waitStarted(300);
    const pid = job.pid!;
    const t0 = performance.now();
    await job.stop();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(3000);
    expect(pidAlive(pid)).toBe(false);
    expect(job.state).toBe("stopped");
  });

  it("rate-limits stderr in the log but keeps the last error line", async () => {
    const chatty = script(
      "chatty",
      'i=0; while [ $i -lt 200 ]; do echo "[x @ 0x1] [warning] line $i" >&2; i=$((i+1)); done; echo "[error] the real reason" >&2; exit 3',
    );
    const log = memoryLog();
    const sup = make({ log, ffmpegPath: () => chatty, stderrLinesPerWindow: 10, stderrWindowMs: 60_000 });
    const job = sup.start({ id: "chatty", kind: "test", protocols: ["file"], args: () => [], restart: "never" });
    await job.done;
    const stderrLines = log.lines.filter((l) => l.msg === "ffmpeg" && l.obj.job === "chatty");
    expect(stderrLines).toHaveLength(10);
    expect(job.lastError).toBe("the real reason");
    expect(job.state).toBe("failed");
  });

  it("redacts secrets from stderr and the last error", async () => {
    const leaky = script("leaky", 'echo "[error] rtmp://host/app/SECRETKEY: Connection refused" >&2; exit 1');
    const log = memoryLog();
    const sup = make({ log, ffmpegPath: () => leaky });
    const job = sup.start({
      id: "leaky",
      kind: "test",
      protocols: ["rtmp", "tcp"],
      args: () => [],
      restart: "never",
      redact: (t) => t.replaceAll("SECRETKEY", "****"),
    });
    await job.done;
    expect(job.lastError).toBe("rtmp://host/app/****: Connection refused");
    expect(JSON.stringify(log.lines)).not.toContain("SECRETKEY");
  });

  it("a running job whose output stops advancing is killed and restarted (stall watchdog)", async () => {
    const port = await freeUdpPort();
    const sup = make({ log: memoryLog(), backoff: { initialMs: 60_000 } });
    const job = sup.start({
      id: "stall",
      kind: "test",
      protocols: ["udp"],
      stallTimeoutMs: 1500,
      args: () => ["-analyzeduration", "500000", "-i", `udp://127.0.0.1:${port}`, "-c", "copy", "-f", "mpegts", "-y", path.join(dir, "stall.ts")],
    });
    await sleep(300); // the job binds its port
    // Our own FFmpeg feeds MPEG-TS over UDP for 2.5 s, then goes quiet: the job blocks on its input.
    const feeder = spawn(
      resolveFfmpeg(),
      [
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=15",
        "-t",
        "2.5",
        "-c:v",
        "mpeg2video",
        "-f",
        "mpegts",
        `udp://127.0.0.1:${port}?pkt_size=1316`,
      ],
      { stdio: "ignore" },
    );
    try {
      await waitFor(() => job.state === "running", { timeoutMs: 5000, what: "running", describe: () => `${job.state} ${job.lastError}` });
      await waitFor(() => job.state === "retrying", { timeoutMs: 8000, what: "killed for stalling" });
      expect(job.lastError).toMatch(/^stalled: no output for [12] s$/);
    } finally {
      feeder.kill("SIGKILL");
    }
  });

  it("closeAll leaves no FFmpeg alive, running or waiting to restart, and refuses new jobs", async () => {
    const sup = make({ log: memoryLog(), backoff: { initialMs: 50 } });
    const a = sup.start(lavfiJob("a"));
    const b = sup.start(lavfiJob("b"));
    const c = sup.start({ id: "c", kind: "test", protocols: ["file"], args: () => ["-i", path.join(dir, "none.ts"), "-f", "null", "-"] });
    await Promise.all([a.waitStarted(5000), b.waitStarted(5000)]);
    const pids = sup.pids();
    expect(pids.length).toBeGreaterThanOrEqual(2);
    await sup.closeAll();
    for (const pid of pids) expect(pidAlive(pid)).toBe(false);
    expect(sup.pids()).toEqual([]);
    expect([a.state, b.state, c.state].every((s) => s === "stopped")).toBe(true);
    await sleep(150); // c's back-off timer would have fired by now
    expect(sup.pids()).toEqual([]);
    expect(() => sup.start(lavfiJob("late"))).toThrow(/closed/);
    // The output files were really written by FFmpeg.
    expect(readFileSync(path.join(dir, "a.ts")).length).toBeGreaterThan(0);
  });
});
