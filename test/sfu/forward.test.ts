import { RtpHeader, RtpPacket } from "werift";
import { describe, expect, it } from "vitest";
import { TrackFanout, type PacketSink } from "../../src/sfu/forward.js";

// VP8 payloads: descriptor byte 0x10 (S=1, PID 0) then the VP8 header's first byte (P bit 0 = key).
const key = () => Buffer.from([0x10, 0x00, 0x9d, 0x01, 0x2a]);
const delta = () => Buffer.from([0x10, 0x01, 0x00]);
const middle = () => Buffer.from([0x00, 0x42]);

let seq = 0;
function packet(payload: Buffer, timestamp: number, ext = false): RtpPacket {
  const header = new RtpHeader({ sequenceNumber: seq++, timestamp, payloadType: 96, ssrc: 1, marker: true });
  if (ext) header.extensions = [{ id: 3, payload: Buffer.from([1, 2, 3]) }];
  if (ext) header.extension = true;
  return new RtpPacket(header, payload);
}

class Collect implements PacketSink {
  readonly got: { seq: number; ext: number }[] = [];
  write(p: RtpPacket): void {
    this.got.push({ seq: p.header.sequenceNumber, ext: p.header.extensions.length });
  }
}

describe("TrackFanout", () => {
  it("a video sink starts on a keyframe and asks for one when it joins", () => {
    let asked = 0;
    const fanout = new TrackFanout("video", "VP8", () => asked++);
    const sink = new Collect();
    seq = 100;
    fanout.add(sink);
    expect(asked).toBe(1);
    fanout.forward(packet(delta(), 1));
    fanout.forward(packet(middle(), 1));
    fanout.forward(packet(key(), 2));
    fanout.forward(packet(middle(), 2));
    fanout.forward(packet(delta(), 3));
    expect(sink.got.map((g) => g.seq)).toEqual([102, 103, 104]);
    expect(fanout.packets).toBe(5);
  });

  it("strips the publisher's header extensions and skips padding-only packets", () => {
    const fanout = new TrackFanout("audio", "opus", () => undefined);
    const sink = new Collect();
    fanout.add(sink);
    fanout.forward(packet(Buffer.from([1, 2]), 1, true));
    fanout.forward(packet(Buffer.alloc(0), 2));
    expect(sink.got).toEqual([{ seq: expect.any(Number), ext: 0 }]);
  });

  it("with a GOP cache, a joiner gets the current GOP at once and no PLI is sent", () => {
    let asked = 0;
    const fanout = new TrackFanout("video", "VP8", () => asked++, 100);
    seq = 0;
    fanout.forward(packet(key(), 1)); // 0
    fanout.forward(packet(delta(), 2)); // 1
    fanout.forward(packet(key(), 3)); // 2: a new GOP replaces the old one
    fanout.forward(packet(middle(), 3)); // 3
    fanout.forward(packet(delta(), 4)); // 4
    const sink = new Collect();
    fanout.add(sink);
    expect(asked).toBe(0);
    expect(sink.got.map((g) => g.seq)).toEqual([2, 3, 4]);
    fanout.forward(packet(delta(), 5));
    expect(sink.got.map((g) => g.seq)).toEqual([2, 3, 4, 5]);
  });

  it("a GOP longer than the cache is dropped, and joiners wait for a keyframe again", () => {
    let asked = 0;
    const fanout = new TrackFanout("video", "VP8", () => asked++, 3);
    seq = 0;
    fanout.forward(packet(key(), 1));
    for (let t = 2; t < 6; t++) fanout.forward(packet(delta(), t));
    const sink = new Collect();
    fanout.add(sink);
    expect(asked).toBe(1);
    expect(sink.got).toEqual([]);
  });
});
