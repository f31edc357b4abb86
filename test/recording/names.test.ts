import { describe, expect, it } from "vitest";
import {
  formatRecordName,
  freeRecordName,
  inSession,
  parseRecordName,
  type PlaybackFileName,
  type RecordName,
  type TrackFileName,
} from "../../src/recording/names.js";

const track = (room: string, seconds: number, over: Partial<TrackFileName> = {}): TrackFileName => ({
  room,
  seconds,
  playback: false,
  kind: "video",
  index: 0,
  extension: "ivf",
  ...over,
});
const session = (room: string, seconds: number, over: Partial<PlaybackFileName> = {}): PlaybackFileName => ({
  room,
  seconds,
  playback: true,
  extension: "webm",
  ...over,
});

/** Deterministic pseudo-random integers (LCG), so a failure repeats. */
function randoms(seed: number): () => number {
  let s = seed;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
}

describe("recording names", () => {
  it("formats the two shapes", () => {
    expect(formatRecordName(track("demo", 1710000001))).toBe("demo_video0_1710000001.ivf");
    expect(formatRecordName(track("demo", 1710000001, { kind: "audio", index: 2, extension: "ogg" }))).toBe("demo_audio2_1710000001.ogg");
    expect(formatRecordName(session("my_room", 1710000001, { extension: "mp4" }))).toBe("my_room_1710000001.mp4");
  });

  it("parse gives back what format was given, for any valid parts", () => {
    const next = randoms(42);
    const alphabet = "abcXYZ019_-";
    const kinds = ["video", "audio"] as const;
    const trackExts = ["ivf", "h264", "ogg"] as const;
    const playbackExts = ["webm", "mp4"] as const;
    for (let i = 0; i < 3000; i++) {
      const room = Array.from({ length: 1 + (next() % 64) }, () => alphabet[next() % alphabet.length]).join("");
      const seconds = next() % 2 === 0 ? next() : (next() % 1000) * 1_000_000_000 + (next() % 1_000_000_000);
      const n: RecordName =
        next() % 2 === 0
          ? track(room, seconds, { kind: kinds[next() % 2], index: next() % 20, extension: trackExts[next() % 3] })
          : session(room, seconds, { extension: playbackExts[next() % 2] });
      const name = formatRecordName(n);
      expect(parseRecordName(name), name).toEqual(n);
      expect(formatRecordName(parseRecordName(name)!)).toBe(name);
    }
  });

  it("a room that ends like a track stays one room in a session name", () => {
    expect(parseRecordName("a_video1_5.webm")).toEqual(session("a_video1", 5));
    expect(parseRecordName("a_video1_5.ivf")).toEqual(track("a", 5, { index: 1 }));
  });

  it("parses nothing that is not a recording: hostile or foreign names", () => {
    for (const bad of [
      "",
      ".",
      "..",
      "../demo_1.webm",
      "..%2Fdemo_1.webm",
      "demo/../demo_1.webm",
      "/etc/demo_1.webm",
      "sub/demo_1.webm",
      "demo\\demo_1.webm",
      "demo_1.webm\0.txt",
      "demo\0_1.webm",
      "demo_video0_1.ivf\0",
      ".demo_1710000001.webm.part",
      "demo_1710000001.ivf",
      "demo_video0_1.webm.txt",
      "demo_x.mp4",
      "demo.webm",
      "demo_1.WEBM",
      "dé mo_1.webm",
      "demo_1.webm ",
      " demo_1.webm",
      "demo_-1.webm",
      "demo_1.5.webm",
      "demo_1234567890123.webm",
      `${"r".repeat(65)}_1.webm`,
      `${"r".repeat(65)}_video0_1.ivf`,
      `${"r".repeat(5000)}_1.webm`,
    ]) {
      expect(parseRecordName(bad), JSON.stringify(bad)).toBeUndefined();
    }
    expect(parseRecordName(`${"r".repeat(64)}_1.webm`)?.room).toHaveLength(64);
  });

  it("refuses to format a name parse would not give back", () => {
    for (const room of ["", "..", "a/b", "a\0", "a.b", "r".repeat(65), "a b"]) {
      expect(() => formatRecordName(session(room, 1)), JSON.stringify(room)).toThrow(RangeError);
      expect(() => formatRecordName(track(room, 1)), JSON.stringify(room)).toThrow(RangeError);
    }
    for (const seconds of [-1, 1.5, Number.NaN, 1e12]) expect(() => formatRecordName(session("demo", seconds))).toThrow(RangeError);
    expect(() => formatRecordName(track("demo", 1, { index: -1 }))).toThrow(RangeError);
  });

  it("a taken name moves the seconds forward", () => {
    const taken = new Set(["demo_video0_100.ivf", "demo_video0_101.ivf", "demo_100.webm"]);
    expect(freeRecordName(track("demo", 100), (n) => taken.has(n))).toBe("demo_video0_102.ivf");
    expect(freeRecordName(session("demo", 100), (n) => taken.has(n))).toBe("demo_101.webm");
    expect(freeRecordName(session("demo", 100, { extension: "mp4" }), (n) => taken.has(n))).toBe("demo_100.mp4");
  });

  it("a track belongs to the session named at or up to ten seconds before it, in its room", () => {
    expect(inSession(track("demo", 100), session("demo", 100))).toBe(true);
    expect(inSession(track("demo", 110), session("demo", 100))).toBe(true);
    expect(inSession(track("demo", 111), session("demo", 100))).toBe(false);
    expect(inSession(track("demo", 99), session("demo", 100))).toBe(false);
    expect(inSession(track("other", 100), session("demo", 100))).toBe(false);
  });
});
