import { RtcpPacketConverter, RtcpTransportLayerFeedback, RunLengthChunk, type StatusVectorChunk, type TransportWideCC } from "werift";
import { describe, expect, it } from "vitest";
import { TwccRecorder } from "../../src/sfu/twcc.js";

/** What a receiver of the feedback reads back: per sequence number, received or not and when (µs). */
function read(buf: Buffer): { base: number; arrivals: (number | undefined)[]; fbCount: number } {
  expect(buf.length % 4).toBe(0);
  expect(buf.readUInt16BE(2)).toBe(buf.length / 4 - 1);
  const [packet] = RtcpPacketConverter.deSerialize(buf);
  expect(packet).toBeInstanceOf(RtcpTransportLayerFeedback);
  const fb = (packet as RtcpTransportLayerFeedback).feedback as TransportWideCC;
  const statuses = fb.packetChunks
    .flatMap((c) => (c instanceof RunLengthChunk ? Array<number>(c.runLength).fill(c.packetStatus) : (c as StatusVectorChunk).symbolList))
    .slice(0, fb.packetStatusCount);
  let at = fb.referenceTime * 64_000;
  let d = 0;
  const arrivals = statuses.map((s) => {
    if (s === 0) return undefined;
    at += fb.recvDeltas[d++]!.delta;
    return at;
  });
  return { base: fb.baseSequenceNumber, arrivals, fbCount: fb.fbPktCount };
}

describe("TwccRecorder", () => {
  it("reports every packet with its arrival time to within 250 µs", () => {
    const r = new TwccRecorder(1, 2);
    const times = Array.from({ length: 20 }, (_, i) => 1_000_123 + i * 1_337);
    times.forEach((t, i) => {
      r.record(100 + i, t, 5);
    });
    const fb = read(r.build(7)!);
    expect(fb.base).toBe(100);
    expect(fb.fbCount).toBe(7);
    expect(fb.arrivals).toHaveLength(20);
    fb.arrivals.forEach((a, i) => {
      expect(Math.abs(a! - times[i]!)).toBeLessThanOrEqual(125);
    });
    expect(r.build(8)).toBeUndefined();
  });

  it("reports the packets that never came as not received, also between two feedbacks", () => {
    const r = new TwccRecorder(1, 2);
    for (const s of [10, 11, 13, 14]) r.record(s, 2_000_000 + s * 1000, 5);
    expect(read(r.build(0)!).arrivals.map((a) => a !== undefined)).toEqual([true, true, false, true, true]);
    for (const s of [17, 18]) r.record(s, 2_000_000 + s * 1000, 5);
    const second = read(r.build(1)!);
    expect(second.base).toBe(15);
    expect(second.arrivals.map((a) => a !== undefined)).toEqual([false, false, true, true]);
  });

  it("uses large deltas for gaps over 63.75 ms and for packets that arrive out of order", () => {
    const r = new TwccRecorder(1, 2);
    r.record(1, 5_000_000, 5);
    r.record(3, 5_000_500, 5);
    r.record(2, 5_000_900 + 0, 5); // arrives after 3
    r.record(4, 5_200_000, 5);
    const fb = read(r.build(0)!);
    const expected = [5_000_000, 5_000_900, 5_000_500, 5_200_000];
    fb.arrivals.forEach((a, i) => {
      expect(Math.abs(a! - expected[i]!)).toBeLessThanOrEqual(250);
    });
  });

  it("follows the 16-bit sequence across 65535", () => {
    const r = new TwccRecorder(1, 2);
    const seqs = [65533, 65534, 65535, 0, 1, 2];
    seqs.forEach((s, i) => {
      r.record(s, 9_000_000 + i * 2000, 5);
    });
    const fb = read(r.build(0)!);
    expect(fb.base).toBe(65533);
    expect(fb.arrivals.every((a) => a !== undefined)).toBe(true);
    expect(fb.arrivals).toHaveLength(6);
  });

  it("splits long runs into several packets of at most 1024 statuses", () => {
    const r = new TwccRecorder(1, 2);
    for (let s = 0; s < 1500; s++) r.record(s, 1_000_000 + s * 100, 5);
    const a = read(r.build(0)!);
    const b = read(r.build(1)!);
    expect(a.arrivals).toHaveLength(1024);
    expect(b.base).toBe(1024);
    expect(b.arrivals).toHaveLength(476);
    expect(r.build(2)).toBeUndefined();
  });
});
