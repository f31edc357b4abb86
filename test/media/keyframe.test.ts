import { describe, expect, it } from "vitest";
import { av1StartsKeyframe, parseAv1AggregationHeader } from "../../src/media/av1.js";
import { h264StartsKeyframe } from "../../src/media/h264.js";
import { startsKeyframe } from "../../src/media/keyframe.js";
import { parseVp8Descriptor, vp8StartsKeyframe } from "../../src/media/vp8.js";
import { parseVp9Descriptor, vp9StartsKeyframe } from "../../src/media/vp9.js";

/** Deterministic pseudo-random payloads of 0..max bytes (LCG), so a failure repeats. */
function payloads(count: number, max: number, seed = 11): Uint8Array[] {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16;
  return Array.from({ length: count }, () => Uint8Array.from({ length: next() % (max + 1) }, () => next() & 0xff));
}

describe("VP8", () => {
  it("a first packet (S=1, PID=0) whose frame tag has P=0", () => {
    expect(vp8StartsKeyframe(Uint8Array.of(0x10, 0x00))).toBe(true);
    expect(vp8StartsKeyframe(Uint8Array.of(0x10, 0x01))).toBe(false); // P=1: inter frame
    expect(vp8StartsKeyframe(Uint8Array.of(0x00, 0x00))).toBe(false); // S=0: a continuation
    expect(vp8StartsKeyframe(Uint8Array.of(0x11, 0x00))).toBe(false); // partition 1
    // X, I (15-bit PictureID), L, T: five descriptor bytes before the frame tag.
    expect(vp8StartsKeyframe(Uint8Array.of(0x90, 0xe0, 0x81, 0x02, 0x03, 0x40, 0x00))).toBe(true);
    expect(vp8StartsKeyframe(Uint8Array.of(0x90, 0xe0, 0x81, 0x02, 0x03, 0x40))).toBe(false); // tag missing
    expect(vp8StartsKeyframe(Uint8Array.of(0x90))).toBe(false);
  });

  it("agrees with the full descriptor parser on any payload", () => {
    for (const p of payloads(20000, 8)) {
      const d = parseVp8Descriptor(p);
      const expected = d?.start === true && d.pid === 0 && d.size < p.length && (p[d.size] & 0x01) === 0;
      expect(vp8StartsKeyframe(p), Buffer.from(p).toString("hex")).toBe(expected);
    }
  });
});

describe("VP9", () => {
  it("B set and P clear", () => {
    expect(vp9StartsKeyframe(Uint8Array.of(0x08))).toBe(true);
    expect(vp9StartsKeyframe(Uint8Array.of(0x48))).toBe(false);
    expect(vp9StartsKeyframe(Uint8Array.of(0x04))).toBe(false);
    expect(vp9StartsKeyframe(new Uint8Array(0))).toBe(false);
  });

  it("agrees with the descriptor parser wherever the descriptor is whole", () => {
    for (const p of payloads(5000, 12, 5)) {
      const d = parseVp9Descriptor(p);
      if (d) expect(vp9StartsKeyframe(p)).toBe(d.beginning && !d.interPicture);
    }
  });
});

describe("H.264", () => {
  it("an IDR or SPS, alone, in a STAP-A or starting an FU-A", () => {
    expect(h264StartsKeyframe(Uint8Array.of(0x65, 0x88))).toBe(true); // IDR
    expect(h264StartsKeyframe(Uint8Array.of(0x67, 0x42))).toBe(true); // SPS
    expect(h264StartsKeyframe(Uint8Array.of(0x41, 0x9a))).toBe(false); // non-IDR slice
    expect(h264StartsKeyframe(Uint8Array.of(0x68, 0xce))).toBe(false); // PPS alone
    // STAP-A: SEI (2 bytes) then SPS (2 bytes).
    expect(h264StartsKeyframe(Uint8Array.of(0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x67, 0x42))).toBe(true);
    expect(h264StartsKeyframe(Uint8Array.of(0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x68, 0xce))).toBe(false);
    // FU-A of an IDR: the start fragment only.
    expect(h264StartsKeyframe(Uint8Array.of(0x7c, 0x85, 0x88))).toBe(true);
    expect(h264StartsKeyframe(Uint8Array.of(0x7c, 0x05, 0x88))).toBe(false);
    expect(h264StartsKeyframe(Uint8Array.of(0x7c, 0x81, 0x88))).toBe(false);
    expect(h264StartsKeyframe(Uint8Array.of(0x7c))).toBe(false);
  });

  it("never reads past a truncated STAP-A", () => {
    for (const p of payloads(5000, 10, 3)) {
      p[0] = 0x78;
      expect(typeof h264StartsKeyframe(p)).toBe("boolean");
    }
  });
});

describe("AV1", () => {
  it("Z=0 and N=1, as the aggregation header parser reads them", () => {
    expect(av1StartsKeyframe(Uint8Array.of(0x18))).toBe(true);
    expect(av1StartsKeyframe(Uint8Array.of(0x98))).toBe(false);
    expect(av1StartsKeyframe(Uint8Array.of(0x10))).toBe(false);
    for (let b = 0; b < 256; b++) {
      const h = parseAv1AggregationHeader(b);
      expect(av1StartsKeyframe(Uint8Array.of(b))).toBe(!h.continuation && h.newSequence);
    }
  });
});

describe("startsKeyframe", () => {
  it("dispatches by codec; every Opus packet is a starting point, no empty payload is", () => {
    const idr = Uint8Array.of(0x65, 0x88);
    expect(startsKeyframe("H264", idr)).toBe(true);
    expect(startsKeyframe("VP8", idr)).toBe(false);
    expect(startsKeyframe("VP9", Uint8Array.of(0x08))).toBe(true);
    expect(startsKeyframe("AV1", Uint8Array.of(0x18))).toBe(true);
    expect(startsKeyframe("opus", Uint8Array.of(0xfc))).toBe(true);
    for (const codec of ["VP8", "VP9", "H264", "AV1", "opus"] as const) expect(startsKeyframe(codec, new Uint8Array(0))).toBe(false);
  });
});
