// The room's continuous source with fake sources and no network: what a sink on the room's track
// receives as sources come, go, stall and come back.
import { RtpHeader, RtpPacket } from "werift";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ContinuousSource, mismatchedTracks, RECOVER_MS, type ContinuityListener, type SourceRole } from "../../src/sfu/continuity.js";
import { TrackFanout } from "../../src/sfu/forward.js";
import { KeyframeRequester } from "../../src/sfu/keyframes.js";
import type { PublishedTrack } from "../../src/sfu/publisher.js";
import type { SdpCodec } from "../../src/sfu/sdp.js";
import type { EndReason } from "../../src/sfu/session.js";
import type { RoomSource } from "../../src/sfu/types.js";

// VP8 payload descriptors (RFC 7741): S=1, PID=0, then the VP8 header's P bit (0 = keyframe).
const KEY = Buffer.from([0x10, 0x00, 0x00, 0x00]);
const DELTA = Buffer.from([0x10, 0x01, 0x00, 0x00]);
const VP8: SdpCodec = { payloadType: 96, name: "VP8", clockRate: 90000, fmtp: "", rtcpFeedback: [] };
const H264: SdpCodec = { payloadType: 102, name: "H264", clockRate: 90000, fmtp: "profile-level-id=42e01f;packetization-mode=1", rtcpFeedback: [] };

class FakeSource implements RoomSource {
  readonly tracks: PublishedTrack[];
  closed = false;
  keyframeRequests = 0;
  seq: number;
  ts: number;

  constructor(
    readonly id: string,
    readonly ssrc: number,
    codec: SdpCodec = VP8,
  ) {
    const keyframes = new KeyframeRequester(() => this.keyframeRequests++, 0);
    const codecName = codec.name === "VP8" ? "VP8" : "H264";
    this.tracks = [{ kind: "video", codecName, codec, index: 0, fanout: new TrackFanout("video", codecName, () => undefined), keyframes }];
    this.seq = (ssrc * 7919) & 0xffff;
    this.ts = ssrc * 1_000_003;
  }

  get packets(): number {
    return this.tracks[0]!.fanout.packets;
  }

  get bytes(): number {
    return this.tracks[0]!.fanout.bytes;
  }

  /** One frame of one packet, 1/30 s after the last. */
  send(key: boolean): void {
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + 3000) >>> 0;
    this.tracks[0]!.fanout.forward(
      new RtpPacket(new RtpHeader({ ssrc: this.ssrc, sequenceNumber: this.seq, timestamp: this.ts, payloadType: 96 }), key ? KEY : DELTA),
    );
  }

  async close(_reason: EndReason): Promise<void> {
    this.closed = true;
  }

  onEnd(): void {}
}

interface Seen {
  seq: number;
  ts: number;
  ssrc: number;
  key: boolean;
}

function sink(source: ContinuousSource): Seen[] {
  const seen: Seen[] = [];
  source.tracks[0]!.fanout.add({
    write: (p) => seen.push({ seq: p.header.sequenceNumber, ts: p.header.timestamp, ssrc: p.header.ssrc, key: p.payload[1] === 0 }),
  });
  return seen;
}

/** Sequence numbers one after the other, timestamps never going back. */
function expectOneStream(seen: Seen[]): void {
  for (let i = 1; i < seen.length; i++) {
    expect(seen[i]!.seq).toBe((seen[i - 1]!.seq + 1) & 0xffff);
    expect((seen[i]!.ts - seen[i - 1]!.ts) >>> 0 < 0x80000000).toBe(true);
    expect(seen[i]!.ssrc).toBe(seen[0]!.ssrc);
  }
}

describe("ContinuousSource", () => {
  const events: string[] = [];
  const listener: ContinuityListener = {
    activeChanged: (active) => events.push(active ? "active" : "inactive"),
    switched: (to: SourceRole, why) => events.push(`${to}:${why}`),
  };
  beforeEach(() => {
    events.length = 0;
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "setImmediate", "performance"] });
  });
  afterEach(() => vi.useRealTimers());

  it("carries one stream from a publisher to the next: same SSRC, next sequence number, timestamps by the time passed", async () => {
    const a = new FakeSource("a", 1111);
    const room = new ContinuousSource(a, { gopCachePackets: 0, failoverMs: 1000, listener });
    room.attach(a, "primary");
    const seen = sink(room);
    a.send(false); // nothing before a keyframe
    a.send(true);
    for (let i = 0; i < 5; i++) a.send(false);
    vi.advanceTimersByTime(10);
    expect(events).toEqual(["active"]);
    room.detach(a);
    expect(room.live).toBeUndefined();
    expect(events).toEqual(["active", "inactive"]);

    vi.advanceTimersByTime(2000);
    const b = new FakeSource("b", 2222);
    room.attach(b, "primary");
    expect(b.keyframeRequests).toBe(1); // asked at once
    b.send(false); // waits for b's keyframe
    b.send(true);
    b.send(false);
    vi.advanceTimersByTime(10);
    // a: its keyframe and 5 deltas; b: its keyframe and a delta.
    expect(seen).toHaveLength(8);
    expectOneStream(seen);
    // About 2 s at 90 kHz between the last packet of a and the keyframe of b.
    const jump = (seen[6]!.ts - seen[5]!.ts) >>> 0;
    expect(jump).toBeGreaterThanOrEqual(180_000);
    expect(jump).toBeLessThan(182_000);
    expect(events).toEqual(["active", "inactive", "active"]);
    await room.close("delete");
  });

  it("fails over to a warm backup from its last keyframe at once, and goes back once the primary is healthy", async () => {
    const primary = new FakeSource("p", 1111);
    const backup = new FakeSource("b", 2222);
    const room = new ContinuousSource(primary, { gopCachePackets: 0, failoverMs: 1000, listener });
    room.attach(primary, "primary");
    room.attach(backup, "backup");
    const seen = sink(room);
    primary.send(true);
    backup.send(true);
    backup.send(false);
    for (let t = 0; t < 10; t++) {
      vi.advanceTimersByTime(100);
      primary.send(false);
      backup.send(false);
    }
    expect(seen.every((s) => s.ssrc === 1111)).toBe(true);
    const before = seen.length;
    // The primary stops; the backup goes on. After the failover time the backup's GOP goes out.
    for (let t = 0; t < 11; t++) {
      vi.advanceTimersByTime(100);
      backup.send(false);
    }
    expect(room.live).toBe("backup");
    expect(room.failovers).toBe(1);
    expect(seen.length).toBeGreaterThan(before + 10);
    expect(seen[before]!.key).toBe(true);
    expectOneStream(seen);
    expect(events).toContain("backup:failover");

    // The primary comes back; only after RECOVER_MS of media is it forwarded again.
    primary.send(true);
    for (let t = 0; t < RECOVER_MS / 100 - 5; t++) {
      vi.advanceTimersByTime(100);
      primary.send(false);
      backup.send(false);
    }
    expect(room.live).toBe("backup");
    for (let t = 0; t < 10; t++) {
      vi.advanceTimersByTime(100);
      primary.send(false);
      backup.send(false);
    }
    expect(room.live).toBe("primary");
    expect(events).toContain("primary:recovered");
    expectOneStream(seen);
    await room.close("delete");
    expect(primary.closed && backup.closed).toBe(true);
  });

  it("a source still connecting is not failed over, nor replaced; one that stopped is silent", async () => {
    const primary = new FakeSource("p", 1111);
    const backup = new FakeSource("b", 2222);
    const room = new ContinuousSource(primary, { gopCachePackets: 0, failoverMs: 1000, listener });
    room.attach(primary, "primary");
    room.attach(backup, "backup");
    for (let t = 0; t < 20; t++) {
      vi.advanceTimersByTime(100);
      backup.send(t % 5 === 0);
    }
    expect(room.live).toBe("primary");
    expect(room.isSilent("primary")).toBe(false);
    primary.send(true);
    vi.advanceTimersByTime(1500);
    expect(room.isSilent("primary")).toBe(true);
    await room.close("delete");
  });

  it("names the room tracks another publisher's codecs cannot continue", () => {
    const vp8 = new FakeSource("a", 1);
    const room = new ContinuousSource(vp8, { gopCachePackets: 0, failoverMs: 1000 });
    expect(mismatchedTracks(room.tracks, new FakeSource("b", 2))).toEqual([]);
    expect(mismatchedTracks(room.tracks, new FakeSource("c", 3, H264)).map((t) => t.codecName)).toEqual(["VP8"]);
    void room.close("delete");
  });
});
