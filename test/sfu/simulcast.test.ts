import { RtpHeader, RtpPacket } from "werift";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SimulcastSelector } from "../../src/sfu/simulcast.js";

// VP8 payload descriptors (RFC 7741): S=1, PID=0, then the VP8 header's P bit (0 = keyframe).
const KEY = Buffer.from([0x10, 0x00, 0x00, 0x00]);
const DELTA = Buffer.from([0x10, 0x01, 0x00, 0x00]);
const packet = (ssrc: number, seq: number, ts: number, payload: Buffer) =>
  new RtpPacket(new RtpHeader({ ssrc, sequenceNumber: seq, timestamp: ts, payloadType: 96 }), payload);

describe("SimulcastSelector", () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "performance"] }));
  afterEach(() => vi.useRealTimers());

  it("starts on the first keyframe, forwards one layer, and moves to a better one only at its keyframe with numbers carried on", () => {
    const out: { seq: number; ts: number; ssrc: number }[] = [];
    let asked = 0;
    const s = new SimulcastSelector(
      "VP8",
      90000,
      (p) => out.push({ seq: p.header.sequenceNumber, ts: p.header.timestamp, ssrc: p.header.ssrc }),
      () => asked++,
    );
    const low = s.addLayer("l");
    const high = s.addLayer("h");
    s.write(low, packet(1, 100, 1000, DELTA)); // nothing before a keyframe
    s.write(low, packet(1, 101, 4000, KEY));
    s.write(low, packet(1, 102, 7000, DELTA));
    s.write(high, packet(2, 5000, 900_000, KEY)); // not the chosen layer: dropped
    expect(out.map((o) => o.seq)).toEqual([101, 102]);

    // h carries more: once measured, it becomes the target and its keyframe is asked for.
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(30);
      s.write(low, packet(1, 103 + i, 10_000 + i * 3000, Buffer.concat([DELTA, Buffer.alloc(100)])));
      s.write(high, packet(2, 5001 + i, 903_000 + i * 3000, Buffer.concat([DELTA, Buffer.alloc(1000)])));
    }
    expect(asked).toBeGreaterThan(0);
    expect(out.at(-1)!.seq).toBe(112);
    vi.advanceTimersByTime(30);
    s.write(high, packet(2, 5011, 933_000, KEY));
    s.write(high, packet(2, 5012, 936_000, DELTA));
    s.write(low, packet(1, 113, 40_000, DELTA)); // the old layer is no longer forwarded
    const after = out.slice(-2);
    expect(after.map((o) => o.seq)).toEqual([113, 114]);
    // One SSRC out, the first layer's; the timestamp moves on by the 30 ms that passed (2700 ticks).
    expect(new Set(out.map((o) => o.ssrc))).toEqual(new Set([1]));
    expect(after[0]!.ts - out.at(-3)!.ts).toBe(2700);
    expect(after[1]!.ts - after[0]!.ts).toBe(3000);
    expect(s.layerStates.find((l) => l.forwarded)?.rid).toBe("h");
    s.close();
  });

  it("leaves a layer that stopped for one still arriving, and drops each layer's padding probes without a hole", () => {
    const seqs: number[] = [];
    const s = new SimulcastSelector(
      "VP8",
      90000,
      (p) => seqs.push(p.header.sequenceNumber),
      () => undefined,
    );
    const h = s.addLayer("h");
    const m = s.addLayer("m");
    s.write(h, packet(2, 10, 0, KEY));
    s.write(h, packet(2, 11, 0, Buffer.alloc(0))); // probe
    s.write(h, packet(2, 12, 3000, DELTA));
    for (let i = 0; i < 30; i++) {
      vi.advanceTimersByTime(30);
      s.write(m, packet(3, 700 + i, i * 3000, DELTA));
    }
    // h sent nothing for 900 ms: m's next keyframe takes over.
    s.write(m, packet(3, 730, 90_000, KEY));
    expect(seqs).toEqual([10, 11, 12]);
    expect(s.layerStates.map((l) => [l.rid, l.active, l.forwarded])).toEqual([
      ["h", false, false],
      ["m", true, true],
    ]);
    s.close();
  });
});
