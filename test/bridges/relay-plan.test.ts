// The relay's pure parts: a forwardRequest body checked into typed commands (loops, schedules,
// windows, transcoding, targets), and the plan of one run (entries, positions, the ffconcat list,
// FFmpeg's arguments). No process, no disk, no server: test/bridges/relay.test.ts runs them for real.
import { describe, expect, it } from "vitest";
import { parseAbsOffTime, parseRelayRequest, parseRelOffTime, parseStamp } from "../../src/bridges/relay/request.js";
import { advance, advanceLooping, ffconcat, passSeconds, planEntries, runArgs, type PlanEntry } from "../../src/bridges/relay/plan.js";
import { API_FOPS, API_RESUME, API_SCHEDULED, API_START, API_STOP, API_UPDATE } from "./relay-bodies.js";

const limits = { minWindowMs: 300_000, now: Date.parse("2026-11-23T00:00:00Z") };
const reason = (body: unknown): string => {
  try {
    parseRelayRequest(body, limits);
  } catch (err) {
    // Whatever class carries it, a refusal is an Error whose message is the reason the caller reads.
    if (err instanceof Error) return err.message;
    throw err;
  }
  return "accepted";
};

describe("relay requests", () => {
  it("reads the API's example start, stop, update and resume bodies", () => {
    const start = parseRelayRequest(JSON.parse(API_START), limits);
    expect(start.cmd).toBe("1");
    expect(start.callbackUrl).toBe("http://www.callback.com/api");
    const t = start.tasks[0]!;
    expect(t).toMatchObject({ id: "123", loop: 1, index: 0, callBackFileInfo: false });
    expect(t.src[1]!.absWindows).toEqual([{ fromMs: Date.UTC(2018, 9, 22, 15, 30), toMs: Date.UTC(2018, 9, 22, 15, 50) }]);
    expect(t.src[2]!.windows).toEqual([{ from: 300, to: 500 }]);
    expect(t.forward.map((f) => f.target)).toEqual([
      { kind: "rtmp", url: "rtmp://www.push1.com/live/test" },
      { kind: "rtmp", url: "rtmp://www.push2.com/live/test2" },
    ]);
    expect(parseRelayRequest(JSON.parse(API_STOP), limits).tasks[0]!.src).toEqual([]);
    expect(parseRelayRequest(JSON.parse(API_UPDATE), limits).tasks[0]!.waitCrtUrlFinish).toBe(false);
    const resume = parseRelayRequest(JSON.parse(API_RESUME), limits).tasks[0]!;
    expect(resume.forward[1]!.resetTo).toEqual({ kind: "rtmp", url: "rtmp://www.push3.com/live/test3" });
  });

  it("refuses bad bodies, each with its reason", () => {
    // The API's own transcoding example swaps res and fps.
    expect(reason(JSON.parse(API_FOPS))).toMatch(/fops.res "25" must be WIDTHxHEIGHT.*swapped/);
    // The API's example schedule lies in 2018: its end is not 5 minutes after now.
    expect(reason(JSON.parse(API_SCHEDULED))).toMatch(/end must be at least 5 minute\(s\) after now/);
    const base = JSON.parse(API_START);
    const task = (over: Record<string, unknown>) => ({ ...base, list: [{ ...base.list[0], ...over }] });
    expect(reason({ ...base, cmd: "4" })).toMatch(/cmd "4" is not one of/);
    expect(reason({ ...base, type: "audio" })).toMatch(/type must be "video"/);
    expect(reason({ ...base, list: [] })).toMatch(/list must be a non-empty list/);
    expect(reason(task({ id: "" }))).toMatch(/id is required/);
    expect(reason(task({ src: [] }))).toMatch(/src needs at least one url/);
    expect(reason(task({ forward: [{ url: "http://x/y" }] }))).toMatch(/rtmp:\/\/ or rtmps:\/\/ URL, or room:\{name\}/);
    expect(reason(task({ forward: [{ url: "room:../x" }] }))).toMatch(/invalid room name/);
    expect(reason(task({ src: [{ url: "a.mp4", relofftime: "500-300" }] }))).toMatch(/end must be after the start/);
    expect(reason(task({ src: [{ url: "a.mp4", relofftime: "abc" }] }))).toMatch(/expected seconds like 300-500/);
    expect(reason(task({ src: [{ url: "a.mp4", absofftime: "20181322153000-20181322155000" }] }))).toMatch(/yyyymmddHHMMSS/);
    expect(reason(task({ extendParam: { index: "4" } }))).toMatch(/index 4 is past the 3 file/);
    expect(reason(task({ fops: { bps: "1200" } }))).toMatch(/need fops.vcodec/);
    expect(reason(task({ fops: { vcodec: "libx265" } }))).toMatch(/libx265 cannot be carried over RTMP/);
    expect(reason(task({ fops: { vcodec: "libx264", acodec: "libvorbis" } }))).toMatch(/libvorbis cannot be carried over RTMP/);
    expect(reason(task({ forward: [{ url: "room:cinema" }], fops: { vcodec: "libx264", acodec: "aac" } }))).toMatch(/into a WebRTC room/);
    expect(reason(task({ start: "12345" }))).toMatch(/13-digit/);
    expect(reason(task({ start: String(limits.now), end: String(limits.now + 60_000) }))).toMatch(/at least 5 minute/);
    expect(reason({ ...base, cmd: "5", list: [{ ...base.list[0] }] })).toMatch(/fops and extendParam are not accepted with cmd 5/);
    expect(reason(task({ src: [{ url: "a.mp4", wmimage: "w.png", wmgravity: "MIDDLE" }] }))).toMatch(/wmgravity must be one of/);
    // A well-formed schedule is accepted.
    expect(reason(task({ start: String(limits.now + 60_000), end: String(limits.now + 60_000 + 300_000) }))).toBe("accepted");
  });
});

describe("relay requests: loops, schedules and windows", () => {
  const base = JSON.parse(API_START);
  const task = (over: Record<string, unknown>) => ({ ...base, list: [{ ...base.list[0], ...over }] });
  const spec = (over: Record<string, unknown>) => parseRelayRequest(task(over), limits).tasks[0]!;

  it("loop: absent plays until stopped, 1 to 1,000,000 passes otherwise; index is 1-based into src", () => {
    expect(spec({ extendParam: {} })).toMatchObject({ loop: undefined, index: 0, callBackFileInfo: false, waitCrtUrlFinish: false });
    expect(spec({ extendParam: { loop: 3, index: "3", callBackFileInfo: "1", waitCrtUrlFinish: 1 } })).toMatchObject({
      loop: 3,
      index: 2,
      callBackFileInfo: true,
      waitCrtUrlFinish: true,
    });
    expect(spec({ extendParam: { loop: "1000000" } }).loop).toBe(1_000_000);
    expect(reason(task({ extendParam: { loop: "0" } }))).toMatch(/loop must be between 1 and 1000000/);
    expect(reason(task({ extendParam: { loop: "-1" } }))).toMatch(/loop must be an integer/);
    expect(reason(task({ extendParam: { loop: "2.5" } }))).toMatch(/loop must be an integer/);
    expect(reason(task({ extendParam: { index: "0" } }))).toMatch(/index must be between 1 and 100/);
    expect(reason(task({ extendParam: { callBackFileInfo: "2" } }))).toMatch(/callBackFileInfo must be between 0 and 1/);
    expect(reason(task({ extendParam: "loop=2" }))).toMatch(/extendParam must be an object/);
  });

  it("a schedule: start alone is fine; end must leave the minimum window after start and after now", () => {
    const now = limits.now;
    expect(spec({ start: String(now + 3_600_000) })).toMatchObject({ startMs: now + 3_600_000, endMs: undefined });
    expect(spec({ end: String(now + 300_000) })).toMatchObject({ startMs: undefined, endMs: now + 300_000 });
    expect(reason(task({ end: String(now + 299_000) }))).toMatch(/end must be at least 5 minute\(s\) after now/);
    // A start in the past counts from now.
    expect(reason(task({ start: String(now - 3_600_000), end: String(now + 60_000) }))).toMatch(/after now/);
    expect(reason(task({ start: String(now + 600_000), end: String(now + 700_000) }))).toMatch(/after start/);
    // Under a minute, the window is named in seconds.
    const short = { minWindowMs: 5000, now };
    expect(() => parseRelayRequest(task({ end: String(now + 1000) }), short)).toThrow(/end must be at least 5 s after now/);
    expect(reason(task({ end: "soon" }))).toMatch(/end must be a 13-digit Unix time in milliseconds/);
  });

  it("relofftime and absofftime: several windows, real dates only, ends after starts", () => {
    expect(parseRelOffTime("0-10; 20.5 - 30.25")).toEqual([
      { from: 0, to: 10 },
      { from: 20.5, to: 30.25 },
    ]);
    expect(() => parseRelOffTime("10-10")).toThrow(/the end must be after the start/);
    expect(() => parseRelOffTime("10-")).toThrow(/expected seconds like 300-500/);
    expect(parseStamp("20240229120000")).toBe(Date.UTC(2024, 1, 29, 12));
    for (const bad of ["20230229120000", "20240230120000", "20241301000000", "20240101240000", "20240101006000", "2024010100000"]) {
      expect(parseStamp(bad), bad).toBeUndefined();
    }
    expect(parseAbsOffTime("20240101000000-20240101000100;20240101010000-20240101020000")).toEqual([
      { fromMs: Date.UTC(2024, 0, 1), toMs: Date.UTC(2024, 0, 1, 0, 1) },
      { fromMs: Date.UTC(2024, 0, 1, 1), toMs: Date.UTC(2024, 0, 1, 2) },
    ]);
    expect(() => parseAbsOffTime("20240101000100-20240101000000")).toThrow(/the end must be after the start/);
    // Both on one file: relofftime is what plays (planEntries below), both are kept.
    expect(spec({ src: [{ url: "a.mp4", relofftime: "1-2", absofftime: "20240101000000-20240101000100" }] }).src[0]).toEqual({
      url: "a.mp4",
      windows: [{ from: 1, to: 2 }],
      absWindows: [{ fromMs: Date.UTC(2024, 0, 1), toMs: Date.UTC(2024, 0, 1, 0, 1) }],
    });
  });

  it("targets, ids and the callback URL", () => {
    expect(spec({ forward: [{ url: "room:cinema" }, { url: "rtmps://h/app/k" }] }).forward.map((f) => f.target)).toEqual([
      { kind: "room", room: "cinema", url: "room:cinema" },
      { kind: "rtmp", url: "rtmps://h/app/k" },
    ]);
    expect(reason(task({ forward: [{ url: "rtmp://h/a/k" }, { url: "rtmp://h/a/k" }] }))).toMatch(/forward\[1\]\.url is listed twice/);
    expect(reason(task({ forward: [{ url: "rtmp://h/a/k", resetUrl: "rtmp://h/a/j" }] }))).toMatch(/resetUrl is only accepted with cmd 5/);
    expect(reason(task({ forward: [] }))).toMatch(/forward must be a non-empty list/);
    expect(reason(task({ forward: Array.from({ length: 11 }, (_, i) => ({ url: `rtmp://h/a/${i}` })) }))).toMatch(/at most 10 targets/);
    expect(reason({ ...base, list: [base.list[0], base.list[0]] })).toMatch(/list\[1\]\.id "123" appears twice/);
    expect(reason(task({ id: "has space" }))).toMatch(/id is required/);
    expect(reason({ ...base, list: Array.from({ length: 21 }, (_, i) => ({ ...base.list[0], id: `t${i}` })) })).toMatch(/at most 20 tasks/);
    for (const url of ["ftp://x/y", "not a url", "http://"])
      expect(reason({ ...base, transcallbackurl: url }), url).toMatch(/transcallbackurl must be an http\(s\) URL/);
    expect(parseRelayRequest({ ...base, transcallbackurl: "" }, limits).callbackUrl).toBeUndefined();
    expect(
      reason(
        task({
          src: [
            { url: "a.mp4", wmimage: "a.png" },
            { url: "b.mp4", wmimage: "b.png" },
          ],
        }),
      ),
    ).toMatch(/same watermark/);
    expect(spec({ src: [{ url: "a.mp4", wmimage: "a.png" }] }).watermark).toEqual({ image: "a.png", gravity: "TOP_LEFT" });
    expect(reason(task({ src: [{ url: "a.mp4", wmimage: "a.png" }], fops: { vcodec: "libvpx" } }))).toMatch(
      /cannot be carried over RTMP|watermark needs fops.vcodec libx264/,
    );
  });
});

describe("relay plan", () => {
  it("plans windows, walks positions across entries, writes ffconcat lists from a position", () => {
    const files = [
      { input: "file:/m/a.mp4", duration: 10 },
      { input: "file:/m/b.mp4", duration: 600, creationMs: Date.UTC(2018, 9, 22, 15, 0) },
      { input: "file:/m/c.mp4", duration: 100 },
    ];
    const entries = planEntries(files, [
      {},
      { absWindows: [{ fromMs: Date.UTC(2018, 9, 22, 15, 1), toMs: Date.UTC(2018, 9, 22, 15, 2) }] },
      {
        windows: [
          { from: 20, to: 30 },
          { from: 90, to: 200 },
        ],
      },
    ]);
    expect(entries.map((e) => [e.file, e.from, e.to, e.seconds])).toEqual([
      [0, 0, undefined, 10],
      [1, 60, 120, 60],
      [2, 20, 30, 10],
      [2, 90, 100, 10],
    ]);
    expect(advance(entries, { pass: 0, entry: 0, offset: 0 }, 75)).toEqual({ pass: 0, entry: 2, offset: 5 });
    expect(advance(entries, { pass: 0, entry: 1, offset: 30 }, 200)).toEqual({ pass: 0, entry: 4, offset: 0 });
    expect(ffconcat(entries, { pass: 0, entry: 1, offset: 15 })).toBe(
      "ffconcat version 1.0\nfile 'file:/m/b.mp4'\ninpoint 75.000\noutpoint 120.000\nfile 'file:/m/c.mp4'\ninpoint 20.000\noutpoint 30.000\nfile 'file:/m/c.mp4'\ninpoint 90.000\noutpoint 100.000\n",
    );
    expect(() => planEntries([{ input: "x", duration: 5 }], [{ windows: [{ from: 10, to: 20 }] }])).toThrow(/no time window/);
    expect(() => planEntries([{ input: "x", duration: 5 }], [{ absWindows: [{ fromMs: 0, toMs: 1000 }] }])).toThrow(/no creation_time/);
  });

  it("clips windows to the file, drops those past its end, and leaves lengths unknown without a duration", () => {
    const entries = planEntries(
      [{ input: "a", duration: 50 }, { input: "b" }, { input: "c", duration: 5, creationMs: 10_000 }],
      [
        {
          windows: [
            { from: 40, to: 90 },
            { from: 60, to: 70 },
          ],
        },
        { windows: [{ from: 3 }] },
        { absWindows: [{ fromMs: 0, toMs: 12_000 }] },
      ],
    );
    expect(entries).toEqual([
      { file: 0, input: "a", from: 40, to: 50, seconds: 10 },
      { file: 1, input: "b", from: 3, to: undefined, seconds: undefined },
      // An absolute window that starts before the file starts at its beginning.
      { file: 2, input: "c", from: 0, to: 2, seconds: 2 },
    ]);
    // relofftime wins over absofftime on the same file.
    expect(planEntries([{ input: "d", duration: 100, creationMs: 0 }], [{ windows: [{ from: 1, to: 2 }], absWindows: [{ fromMs: 0, toMs: 50_000 }] }])).toEqual(
      [{ file: 0, input: "d", from: 1, to: 2, seconds: 1 }],
    );
  });

  it("walks a position through entries: exact ends move on, an entry of unknown length holds it, the pass is kept", () => {
    const entries: PlanEntry[] = [
      { file: 0, input: "a", from: 0, seconds: 10 },
      { file: 1, input: "b", from: 5, to: 15, seconds: 10 },
      { file: 2, input: "c", from: 0 },
    ];
    expect(advance(entries, { pass: 3, entry: 0, offset: 0 }, 10)).toEqual({ pass: 3, entry: 1, offset: 0 });
    expect(advance(entries, { pass: 3, entry: 0, offset: 4 }, 5.5)).toEqual({ pass: 3, entry: 0, offset: 9.5 });
    expect(advance(entries, { pass: 1, entry: 1, offset: 2 }, 1000)).toEqual({ pass: 1, entry: 2, offset: 992 });
    expect(advance(entries, { pass: 0, entry: 0, offset: 0 }, 0)).toEqual({ pass: 0, entry: 0, offset: 0 });
  });

  it("follows one FFmpeg looping over the passes: the pass wraps, never past the last, a start inside a pass walks as advance does", () => {
    const entries: PlanEntry[] = [
      { file: 0, input: "a", from: 0, seconds: 2 },
      { file: 1, input: "b", from: 0, seconds: 3 },
    ];
    expect(passSeconds(entries)).toBe(5);
    expect(passSeconds([...entries, { file: 2, input: "c", from: 0 }])).toBeUndefined();
    expect(advanceLooping(entries, { pass: 1, entry: 0, offset: 0 }, 1, 5)).toEqual({ pass: 1, entry: 0, offset: 1 });
    expect(advanceLooping(entries, { pass: 1, entry: 0, offset: 0 }, 11, 5)).toEqual({ pass: 3, entry: 0, offset: 1 });
    expect(advanceLooping(entries, { pass: 1, entry: 0, offset: 0 }, 13.5, 5)).toEqual({ pass: 3, entry: 1, offset: 1.5 });
    expect(advanceLooping(entries, { pass: 0, entry: 0, offset: 0 }, 10.2, 1)).toEqual({ pass: 1, entry: 2, offset: 0 });
    expect(advanceLooping(entries, { pass: 0, entry: 0, offset: 0 }, 1e6, Infinity).pass).toBe(200_000);
    expect(advanceLooping(entries, { pass: 2, entry: 1, offset: 1 }, 10, 5)).toEqual({ pass: 2, entry: 2, offset: 0 });
  });

  it("writes ffconcat lists that quote names and start mid-entry", () => {
    const entries: PlanEntry[] = [
      { file: 0, input: "file:/m/it's.mp4", from: 0, seconds: 10 },
      { file: 1, input: "https://h/x.mp4", from: 0 },
    ];
    expect(ffconcat(entries, { pass: 0, entry: 0, offset: 0 })).toBe("ffconcat version 1.0\nfile 'file:/m/it'\\''s.mp4'\nfile 'https://h/x.mp4'\n");
    expect(ffconcat(entries, { pass: 0, entry: 1, offset: 2.5 })).toBe("ffconcat version 1.0\nfile 'https://h/x.mp4'\ninpoint 2.500\n");
    expect(ffconcat(entries, { pass: 0, entry: 2, offset: 0 })).toBe("ffconcat version 1.0\n");
  });
});

/** The value after `flag` in an argument list. */
const flagValue = (args: string[], flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
};

describe("relay run arguments", () => {
  it("to RTMP: the concat list in real time, H.264 with a 2 s GOP, optional audio in AAC, FLV out", () => {
    const args = runArgs({ listFile: "/tmp/l.txt", target: { kind: "rtmp", url: "rtmp://h/app/key" } });
    expect(args.slice(0, 7)).toEqual(["-re", "-f", "concat", "-safe", "0", "-i", "/tmp/l.txt"]);
    expect(flagValue(args, "-map")).toBe("0:v:0");
    expect(args).toContain("0:a:0?");
    expect(flagValue(args, "-c:v")).toBe("libx264");
    expect(flagValue(args, "-g")).toBe("50");
    expect(flagValue(args, "-c:a")).toBe("aac");
    expect(args).not.toContain("-vf");
    expect(args).not.toContain("-b:v");
    expect(args.at(-1)).toBe("rtmp://h/app/key");
    expect(args.slice(args.lastIndexOf("-f"), args.lastIndexOf("-f") + 2)).toEqual(["-f", "flv"]);
  });

  it("passes joined inside one FFmpeg: -stream_loop before the concat input, none for a single pass", () => {
    const target = { kind: "rtmp" as const, url: "rtmp://h/app/key" };
    expect(runArgs({ listFile: "l", target, loops: 2 }).slice(0, 9)).toEqual(["-re", "-stream_loop", "2", "-f", "concat", "-safe", "0", "-i", "l"]);
    expect(flagValue(runArgs({ listFile: "l", target, loops: -1 }), "-stream_loop")).toBe("-1");
    expect(runArgs({ listFile: "l", target, loops: 0 })).not.toContain("-stream_loop");
  });

  it("transcoding: size, frame rate (and the GOP that follows it), bitrate, audio codec", () => {
    const args = runArgs({
      listFile: "l",
      target: { kind: "rtmp", url: "rtmp://h/a/k" },
      fops: { vcodec: "libx264", width: 640, height: 360, fps: 15, bps: 800, acodec: "libmp3lame" },
    });
    expect(flagValue(args, "-vf")).toBe("scale=640:360,fps=15");
    expect(flagValue(args, "-g")).toBe("30");
    expect([flagValue(args, "-b:v"), flagValue(args, "-maxrate"), flagValue(args, "-bufsize")]).toEqual(["800k", "800k", "1600k"]);
    expect(flagValue(args, "-c:a")).toBe("libmp3lame");
  });

  it("a watermark overlays the second input where its gravity says, after the scaling", () => {
    const args = runArgs({
      listFile: "l",
      target: { kind: "rtmp", url: "rtmp://h/a/k" },
      watermark: { input: "file:/m/logo.png", gravity: "BOTTOM_RIGHT" },
      fops: { vcodec: "libx264", width: 320, height: 180 },
    });
    expect(args.slice(7, 9)).toEqual(["-i", "file:/m/logo.png"]);
    expect(flagValue(args, "-filter_complex")).toBe("[0:v:0]scale=320:180[base];[base][1:v:0]overlay=W-w-10:H-h-10[v]");
    expect(flagValue(args, "-map")).toBe("[v]");
    expect(
      flagValue(
        runArgs({ listFile: "l", target: { kind: "rtmp", url: "rtmp://h/a/k" }, watermark: { input: "w.png", gravity: "TOP_LEFT" } }),
        "-filter_complex",
      ),
    ).toBe("[0:v:0][1:v:0]overlay=10:10[v]");
  });

  it("into a room: at most 720p, Constrained Baseline at 2.5 Mbps, RTP with the room's payload types, SSRCs and ports", () => {
    const target = { kind: "room" as const, room: "cinema", url: "room:cinema" };
    const args = runArgs({ listFile: "l", target, ports: [5000, 5002], ssrcs: [11, 22] });
    expect(flagValue(args, "-vf")).toMatch(/^scale=w='min\(iw,1280\)':h='min\(ih,720\)'/);
    expect(flagValue(args, "-profile:v")).toBe("baseline");
    expect(flagValue(args, "-b:v")).toBe("2500k");
    expect(flagValue(args, "-c:a")).toBe("libopus");
    expect(args.filter((a) => a.startsWith("rtp://")).map((u) => u.replace(/&pkt_size=\d+$/, ""))).toEqual([
      "rtp://127.0.0.1:5000?rtcpport=5000",
      "rtp://127.0.0.1:5002?rtcpport=5002",
    ]);
    expect(args.filter((_, i) => args[i - 1] === "-ssrc")).toEqual(["11", "22"]);
    // A list without audio: one port, no audio output.
    const silent = runArgs({ listFile: "l", target, ports: [5000], ssrcs: [11, 22] });
    expect(silent).not.toContain("libopus");
    expect(silent.filter((a) => a.startsWith("rtp://"))).toHaveLength(1);
    expect(() => runArgs({ listFile: "l", target })).toThrow(/needs its RTP ports and SSRCs/);
  });
});
