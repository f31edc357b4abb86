// Players' reports turned into differences, frozen viewers and room sums, with no server.
import { describe, expect, it } from "vitest";
import {
  FROZEN_KEYFRAME_REPEAT_MS,
  PlayerQuality,
  REPORT_FRESH_MS,
  ViewerReports,
  type ReportDelta,
  type ReportingViewer,
} from "../../src/sfu/player-quality.js";

describe("ViewerReports", () => {
  it("counts a first report whole (counters start with the session), then differences", () => {
    const v = new ViewerReports();
    const first = v.update({ freezeCount: 1, totalFreezesDuration: 0.5, framesDecoded: 60, framesDropped: 2 }, 0);
    expect(first).toMatchObject({ freezes: 1, freezeSeconds: 0.5, framesDecoded: 60, framesDropped: 2, frozen: false, keyframe: false });
    const next = v.update({ freezeCount: 3, totalFreezesDuration: 1.5, framesDecoded: 120, framesDropped: 2 }, 2000);
    expect(next).toMatchObject({ freezes: 2, freezeSeconds: 1, framesDecoded: 60, framesDropped: 0, frozen: false, frozenMs: 0 });
  });

  it("reads a counter that went back as started again", () => {
    const v = new ViewerReports();
    v.update({ framesDecoded: 500, freezeCount: 4 }, 0);
    expect(v.update({ framesDecoded: 30, freezeCount: 1 }, 2000)).toMatchObject({ framesDecoded: 30, freezes: 1 });
  });

  it("gives the interval's mean jitter-buffer delay, its loss ratio, RTT and height", () => {
    const v = new ViewerReports();
    const a = v.update(
      { jitterBufferDelay: 2, jitterBufferEmittedCount: 100, packetsReceived: 990, packetsLost: 10, roundTripTime: 0.03, frameHeight: 720 },
      0,
    );
    expect(a.jitterBufferDelay).toBeCloseTo(0.02);
    expect(a.lossRatio).toBeCloseTo(0.01);
    expect(a).toMatchObject({ roundTripTime: 0.03, frameHeight: 720 });
    const b = v.update({ jitterBufferDelay: 8, jitterBufferEmittedCount: 200, packetsReceived: 1090, packetsLost: 10 }, 2000);
    expect(b.jitterBufferDelay).toBeCloseTo(0.06);
    expect(b.lossRatio).toBe(0);
    expect(b.roundTripTime).toBeUndefined();
    // Nothing new emitted or received: no ratio rather than 0/0.
    const c = v.update({ jitterBufferDelay: 8, jitterBufferEmittedCount: 200, packetsReceived: 1090, packetsLost: 10 }, 4000);
    expect(c.jitterBufferDelay).toBeUndefined();
    expect(c.lossRatio).toBeUndefined();
  });

  it("a negative packetsLost (duplicates) counts no loss", () => {
    const v = new ViewerReports();
    expect(v.update({ packetsReceived: 100, packetsLost: -3 }, 0).lossRatio).toBe(0);
  });

  it("frames that stop advancing are a freeze, asked a keyframe for once it lasts over 2 s, at most every 3 s", () => {
    const v = new ViewerReports();
    v.update({ framesDecoded: 100 }, 0);
    const stalled = v.update({ framesDecoded: 100 }, 1500);
    expect(stalled).toMatchObject({ frozen: true, frozenMs: 1500, keyframe: false });
    expect(v.frozenNow(1500)).toBe(true);
    expect(v.update({ framesDecoded: 100 }, 2500)).toMatchObject({ frozen: true, frozenMs: 2500, keyframe: true });
    // Throttled per viewer.
    expect(v.update({ framesDecoded: 100 }, 3500).keyframe).toBe(false);
    expect(v.update({ framesDecoded: 100 }, 2500 + FROZEN_KEYFRAME_REPEAT_MS).keyframe).toBe(true);
    // Frames advance again: no longer frozen.
    expect(v.update({ framesDecoded: 130 }, 6000)).toMatchObject({ frozen: false, frozenMs: 0, keyframe: false });
    expect(v.frozenNow(6000)).toBe(false);
  });

  it("a player that says it is frozen is believed, from when it says it started", () => {
    const v = new ViewerReports();
    expect(v.update({ framesDecoded: 10, frozenSeconds: 2.5 }, 10_000)).toMatchObject({ frozen: true, frozenMs: 2500, keyframe: true });
    v.update({ framesDecoded: 40, frozenSeconds: 0 }, 12_000);
    expect(v.frozenNow(12_000)).toBe(false);
  });

  it("a viewer that never decoded a frame is frozen from its first report on", () => {
    const v = new ViewerReports();
    expect(v.update({ framesDecoded: 0 }, 0).frozen).toBe(false);
    expect(v.update({ framesDecoded: 0 }, 2100)).toMatchObject({ frozen: true, keyframe: true });
  });

  it("audio-only reports (no framesDecoded) are never frozen", () => {
    const v = new ViewerReports();
    v.update({ packetsReceived: 10 }, 0);
    expect(v.update({ packetsReceived: 10 }, 5000).frozen).toBe(false);
  });

  it("stops speaking for a viewer whose reports stopped", () => {
    const v = new ViewerReports();
    v.update({ framesDecoded: 1 }, 0);
    v.update({ framesDecoded: 1 }, 1000);
    expect(v.reporting(1000 + REPORT_FRESH_MS)).toBe(true);
    expect(v.frozenNow(1001 + REPORT_FRESH_MS)).toBe(false);
    expect(v.reporting(1001 + REPORT_FRESH_MS)).toBe(false);
  });
});

describe("PlayerQuality", () => {
  const viewer = (video = true): ReportingViewer & { asked: number } => ({
    asked: 0,
    requestKeyframe() {
      this.asked++;
      return video;
    },
  });

  it("sums a room's reports, counts frozen viewers and asks keyframes on their behalf", () => {
    const q = new PlayerQuality();
    const seen: ReportDelta[] = [];
    q.addObserver({ observe: (d) => seen.push(d) });
    const a = viewer();
    const b = viewer();
    const silent = viewer();
    const room = {
      subscribers: new Map<string, object>([
        ["a", a],
        ["b", b],
        ["s", silent],
      ]),
    };
    q.report(room, a, { framesDecoded: 50, framesDropped: 1, freezeCount: 1 }, 0);
    q.report(room, b, { framesDecoded: 50 }, 0);
    q.report(room, a, { framesDecoded: 50, framesDropped: 1, freezeCount: 1 }, 2500);
    q.report(room, b, { framesDecoded: 110 }, 2500);
    expect(q.totals(room)).toEqual({ reports: 4, freezes: 1, framesDecoded: 160, framesDropped: 1, keyframeRequests: 1 });
    expect(a.asked).toBe(1);
    expect(b.asked).toBe(0);
    expect(q.viewersOf(room, 3000)).toEqual({ reporting: 2, frozen: 1 });
    expect(q.viewersOf(room, 2501 + REPORT_FRESH_MS)).toEqual({ reporting: 0, frozen: 0 });
    expect(seen).toHaveLength(4);
  });

  it("a request for a viewer without video is not counted; an unknown room has zero sums", () => {
    const q = new PlayerQuality();
    const audioOnly = viewer(false);
    const room = { subscribers: new Map<string, object>([["x", audioOnly]]) };
    q.report(room, audioOnly, { framesDecoded: 0 }, 0);
    q.report(room, audioOnly, { framesDecoded: 0 }, 3000);
    expect(audioOnly.asked).toBe(1);
    expect(q.totals(room).keyframeRequests).toBe(0);
    expect(q.totals({ subscribers: new Map() })).toEqual({ reports: 0, freezes: 0, framesDecoded: 0, framesDropped: 0, keyframeRequests: 0 });
  });
});
