import { describe, expect, it } from "vitest";
import { isNewer, seqAdd, seqDiff, wrapSeq } from "../../src/media/sequence.js";

/** Deterministic pseudo-random 16-bit numbers (LCG), so a failure repeats. */
function* numbers(count: number, seed = 7): Generator<number> {
  let s = seed;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    yield s >>> 16;
  }
}

describe("seqDiff", () => {
  it("is the signed 16-bit distance, across the wrap", () => {
    expect(seqDiff(10, 12)).toBe(2);
    expect(seqDiff(12, 10)).toBe(-2);
    expect(seqDiff(65535, 0)).toBe(1);
    expect(seqDiff(0, 65535)).toBe(-1);
    expect(seqDiff(65530, 4)).toBe(10);
    expect(seqDiff(0, 32767)).toBe(32767);
    expect(seqDiff(0, 32768)).toBe(-32768);
  });

  it("for any a and any step d in [-32768, 32767]: seqDiff(a, a + d) = d", () => {
    for (const a of numbers(500)) {
      for (const d of [-32768, -32767, -1000, -1, 0, 1, 2, 1000, 32766, 32767]) {
        expect(seqDiff(a, seqAdd(a, d))).toBe(d);
      }
    }
  });

  it("is antisymmetric except at the half-way point", () => {
    const b = [...numbers(500, 99)];
    for (const [k, a] of [...numbers(500)].entries()) {
      const d = seqDiff(a, b[k]);
      if (d !== -32768) expect(seqDiff(b[k], a)).toBe(-d);
    }
  });
});

describe("isNewer", () => {
  it("follows 16-bit wrap-around", () => {
    expect(isNewer(1, 0)).toBe(true);
    expect(isNewer(0, 65535)).toBe(true);
    expect(isNewer(65535, 0)).toBe(false);
    expect(isNewer(5, 5)).toBe(false);
    expect(isNewer(100, 100 + 0x7fff)).toBe(false);
  });

  it("a number up to 32767 ahead is newer, and never both ways", () => {
    for (const a of numbers(500)) {
      for (const d of [1, 2, 100, 32767]) {
        const b = seqAdd(a, d);
        expect(isNewer(b, a)).toBe(true);
        expect(isNewer(a, b)).toBe(false);
      }
      expect(isNewer(a, a)).toBe(false);
    }
  });

  it("agrees with a positive seqDiff", () => {
    const bs = [...numbers(1000, 3)];
    for (const [k, a] of [...numbers(1000)].entries()) expect(isNewer(bs[k], a)).toBe(seqDiff(a, bs[k]) > 0);
  });
});

describe("seqAdd / wrapSeq", () => {
  it("wrap at 2^16 both ways", () => {
    expect(seqAdd(65535, 1)).toBe(0);
    expect(seqAdd(0, -1)).toBe(65535);
    expect(seqAdd(100, -65536)).toBe(100);
    expect(wrapSeq(65536 + 5)).toBe(5);
    expect(wrapSeq(-1)).toBe(65535);
  });

  it("stay in 0..65535 and undo each other", () => {
    for (const a of numbers(500)) {
      for (const n of [-70000, -1, 1, 65535, 70000]) {
        const b = seqAdd(a, n);
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThanOrEqual(65535);
        expect(seqAdd(b, -n)).toBe(a);
      }
    }
  });
});
