import { describe, expect, it } from "vitest";
import { ReorderBuffer, type ReorderItem } from "../../src/media/reorder.js";

interface P {
  sequenceNumber: number;
}
const p = (sequenceNumber: number): P => ({ sequenceNumber });

/** Items as a compact list: sequence numbers, and "-n" strings for n lost. */
function show(items: ReorderItem<P>[]): (number | string)[] {
  return items.map((i) => (i.type === "packet" ? i.packet.sequenceNumber : `-${i.count}`));
}

function pushAll(b: ReorderBuffer<P>, seqs: number[]): (number | string)[] {
  return seqs.flatMap((s) => show(b.push(p(s))));
}

describe("ReorderBuffer", () => {
  it("holds the first packets, then releases in order as they arrive", () => {
    const b = new ReorderBuffer<P>(64, 3);
    expect(show(b.push(p(100)))).toEqual([]);
    expect(show(b.push(p(101)))).toEqual([]);
    expect(show(b.push(p(102)))).toEqual([100, 101, 102]);
    expect(show(b.push(p(103)))).toEqual([103]);
  });

  it("starts at the lowest of the start-up packets, even when the first one came late", () => {
    const b = new ReorderBuffer<P>(64, 4);
    expect(pushAll(b, [12, 10, 13, 11])).toEqual([10, 11, 12, 13]);
    expect(b.stats).toEqual({ lost: 0, dropped: 0 });
  });

  it("puts reordered packets back in order", () => {
    const b = new ReorderBuffer<P>(64, 1);
    expect(pushAll(b, [1, 3, 4, 2, 6, 5, 7])).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(b.size).toBe(0);
  });

  it("drops duplicates and packets older than what was released", () => {
    const b = new ReorderBuffer<P>(64, 1);
    expect(pushAll(b, [1, 2, 2, 4, 4, 1, 3])).toEqual([1, 2, 3, 4]);
    expect(b.stats.dropped).toBe(3);
  });

  it("waits for a hole until a packet `capacity` ahead arrives, then reports it as lost", () => {
    const b = new ReorderBuffer<P>(4, 1);
    expect(pushAll(b, [1, 3, 4, 5])).toEqual([1]);
    expect(b.size).toBe(3);
    // 6 is 4 ahead of the hole at 2: the window moves, 2 is given up.
    expect(show(b.push(p(6)))).toEqual(["-1", 3, 4, 5, 6]);
    expect(b.stats.lost).toBe(1);
    // 2 arriving now is too late.
    expect(show(b.push(p(2)))).toEqual([]);
    expect(b.stats.dropped).toBe(1);
  });

  it("never holds more than `capacity` packets", () => {
    const b = new ReorderBuffer<P>(8, 1);
    b.push(p(0));
    for (let s = 2; s < 100; s++) {
      b.push(p(s));
      expect(b.size).toBeLessThanOrEqual(8);
    }
  });

  it("reports a long jump as one gap without walking every slot", () => {
    const b = new ReorderBuffer<P>(64, 1);
    // The window moves so that 20001 is its last slot; the 63 before it may still come.
    expect(pushAll(b, [1, 20001])).toEqual([1, "-19936"]);
    expect(pushAll(b, [19999, 19938])).toEqual([19938]);
    expect(show(b.flush())).toEqual(["-60", 19999, "-1", 20001]);
    expect(b.stats.lost).toBe(19936 + 61);
  });

  it("handles the sequence number wrap at 65535 → 0", () => {
    const b = new ReorderBuffer<P>(64, 1);
    expect(pushAll(b, [65533, 65535, 0, 65534, 2, 1])).toEqual([65533, 65534, 65535, 0, 1, 2]);
  });

  it("reports a gap across the wrap", () => {
    const b = new ReorderBuffer<P>(4, 1);
    expect(pushAll(b, [65534, 0, 1, 2, 3])).toEqual([65534, "-1", 0, 1, 2, 3]);
  });

  it("flush releases everything held, with the holes between", () => {
    const b = new ReorderBuffer<P>(64, 1);
    expect(pushAll(b, [10, 12, 15, 16])).toEqual([10]);
    expect(show(b.flush())).toEqual(["-1", 12, "-2", 15, 16]);
    expect(b.size).toBe(0);
    expect(show(b.push(p(17)))).toEqual([17]);
  });

  it("flush during the start-up hold releases what it has", () => {
    const b = new ReorderBuffer<P>(64, 4);
    expect(pushAll(b, [7, 5])).toEqual([]);
    expect(show(b.flush())).toEqual([5, "-1", 7]);
  });

  it("follows a sender that restarts its sequence numbers far behind", () => {
    const b = new ReorderBuffer<P>(4, 1);
    pushAll(b, [30000, 30001]);
    // Behind by more than half the space counts as old: after `capacity` of them in a row, resync.
    expect(pushAll(b, [100, 101, 102])).toEqual([]);
    expect(pushAll(b, [103])).toEqual([103]);
    expect(pushAll(b, [104])).toEqual([104]);
  });

  it("rejects a silly capacity", () => {
    expect(() => new ReorderBuffer<P>(0)).toThrow(RangeError);
    expect(() => new ReorderBuffer<P>(40000)).toThrow(RangeError);
  });
});
