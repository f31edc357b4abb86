// The plain counters /metrics reads off the forwarding objects: what a track sends to viewers
// (not to recorders or egress), and keyframe requests from viewers and to the publisher.
import { RtpHeader, RtpPacket } from "werift";
import { describe, expect, it } from "vitest";
import { TrackFanout, type PacketSink } from "../../src/sfu/forward.js";
import { KeyframeRequester } from "../../src/sfu/keyframes.js";

const key = () => Buffer.from([0x10, 0x00, 0x9d, 0x01, 0x2a]);
const delta = () => Buffer.from([0x10, 0x01, 0x00]);

let seq = 0;
function packet(payload: Buffer, timestamp: number): RtpPacket {
  const header = new RtpHeader({ sequenceNumber: seq++, timestamp, payloadType: 96, ssrc: 1, marker: true });
  header.payloadOffset = 12;
  return new RtpPacket(header, payload);
}

const sink = (): PacketSink & { n: number } => ({
  n: 0,
  write() {
    this.n++;
  },
});

describe("TrackFanout viewer counters", () => {
  it("count each packet once per viewer it is written to, never for other sinks or while a viewer waits for a keyframe", () => {
    const fanout = new TrackFanout("video", "VP8", () => undefined);
    const a = sink();
    const b = sink();
    const recorder = sink();
    fanout.add(a, { viewer: true });
    fanout.add(recorder, { waitForKeyframe: true });
    fanout.forward(packet(delta(), 1)); // everyone waits
    fanout.forward(packet(key(), 2));
    fanout.add(b, { viewer: true });
    fanout.forward(packet(delta(), 3)); // b waits
    expect([a.n, b.n, recorder.n]).toEqual([2, 0, 2]);
    expect(fanout.viewerPackets).toBe(2);
    expect(fanout.viewerBytes).toBe(12 + 5 + 12 + 3);
    expect(fanout.packets).toBe(3);
  });

  it("count the GOP a joining viewer is replayed", () => {
    const fanout = new TrackFanout("video", "VP8", () => undefined, 16);
    fanout.forward(packet(key(), 1));
    fanout.forward(packet(delta(), 2));
    const late = sink();
    fanout.add(late, { viewer: true });
    expect(late.n).toBe(2);
    expect(fanout.viewerPackets).toBe(2);
    expect(fanout.viewerBytes).toBe(12 + 5 + 12 + 3);
  });
});

describe("KeyframeRequester counters", () => {
  it("counts what reaches the publisher after throttling", () => {
    let sent = 0;
    const requester = new KeyframeRequester(() => sent++, 60_000);
    requester.request();
    requester.request();
    requester.request();
    expect(sent).toBe(1);
    expect(requester.requestsSent).toBe(1);
    requester.close();
  });
});
