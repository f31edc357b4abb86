import { describe, expect, it } from "vitest";
import { nackedSequences, SequenceCompactor } from "../../src/sfu/sequence.js";

describe("SequenceCompactor", () => {
  it("forwards numbers unchanged until something is dropped", () => {
    const c = new SequenceCompactor();
    expect([10, 11, 12].map((s) => c.map(s))).toEqual([10, 11, 12]);
  });

  it("renumbers what follows each drop so the output has no holes", () => {
    const c = new SequenceCompactor();
    const out: number[] = [];
    for (let seq = 100; seq < 120; seq++) {
      if (seq % 5 === 0) c.drop(seq);
      else out.push(c.map(seq));
    }
    expect(out).toEqual(Array.from({ length: 16 }, (_, i) => 100 + i));
  });

  it("shifts a late packet only by the drops before it", () => {
    const c = new SequenceCompactor();
    expect(c.map(10)).toBe(10);
    c.drop(11);
    expect(c.map(13)).toBe(12);
    // 12 arrives late, after the drop of 11 and after 13: it takes the number between.
    expect(c.map(12)).toBe(11);
    c.drop(14);
    expect(c.map(15)).toBe(13);
    // A straggler from before both drops is not moved at all.
    expect(c.map(9)).toBe(9);
  });

  it("counts a duplicated probe once", () => {
    const c = new SequenceCompactor();
    c.drop(7);
    c.drop(7);
    expect(c.map(8)).toBe(7);
  });

  it("wraps past 65535", () => {
    const c = new SequenceCompactor();
    c.drop(65535);
    expect(c.map(0)).toBe(65535);
    expect(c.map(1)).toBe(0);
    expect(c.map(65534)).toBe(65534);
  });
});

describe("nackedSequences", () => {
  // length = words - 1: header + two SSRCs + n FCI words.
  const nack = (pairs: number, lost: number[]) => ({ header: { length: 2 + pairs }, lost });

  it("keeps the pairs the header counts and drops what werift read past the packet", () => {
    // One pair: PID 26063 with BLP bits 1..3; then a REMB header (0x8fce, length 5) read as a pair.
    expect(nackedSequences(nack(1, [26063, 26065, 26066, 26067, 36814, 36815, 36817, 0, 1]))).toEqual([26063, 26065, 26066, 26067]);
  });

  it("reads several pairs", () => {
    expect(nackedSequences(nack(2, [100, 101, 150, 166, 0, 1]))).toEqual([100, 101, 150, 166]);
  });

  it("wraps numbers werift left past 65535", () => {
    expect(nackedSequences(nack(1, [65534, 65535, 65536, 65537]))).toEqual([65534, 65535, 0, 1]);
  });
});
