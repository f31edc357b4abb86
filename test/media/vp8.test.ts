import { describe, expect, it } from "vitest";
import type { Frame } from "../../src/media/assembler.js";
import { ReorderBuffer } from "../../src/media/reorder.js";
import type { RtpView } from "../../src/media/rtp.js";
import { parseVp8Descriptor, parseVp8FrameHeader, Vp8Assembler } from "../../src/media/vp8.js";
import { rtp } from "./helpers.js";

// A VP8 keyframe start: frame tag (P=0), start code, 320 and 240 with scale bits 01 and 10 set.
const KEY = [0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x41, 0xf0, 0x80];
const INTER = [0x31, 0x02, 0x00, 0x11, 0x22];

describe("parseVp8Descriptor", () => {
  it("reads the one-byte form", () => {
    expect(parseVp8Descriptor(Uint8Array.of(0x10, 0xaa))).toEqual({ start: true, nonReference: false, pid: 0, size: 1 });
    expect(parseVp8Descriptor(Uint8Array.of(0x23))).toEqual({ start: false, nonReference: true, pid: 3, size: 1 });
  });

  it("reads I (15-bit PictureID), L, T and K", () => {
    // X=1 S=1; I L T K; M=1 PictureID 0x0123; TL0PICIDX 5; TID=2 Y=1 KEYIDX=3.
    const d = parseVp8Descriptor(Uint8Array.of(0x90, 0xf0, 0x81, 0x23, 0x05, 0xa3, 0x50));
    expect(d).toEqual({
      start: true,
      nonReference: false,
      pid: 0,
      pictureId: 0x0123,
      pictureId15: true,
      tl0PicIdx: 5,
      tid: 2,
      layerSync: true,
      keyIdx: 3,
      size: 6,
    });
  });

  it("reads a 7-bit PictureID, and K without T", () => {
    expect(parseVp8Descriptor(Uint8Array.of(0x90, 0x90, 0x45, 0x1f))).toMatchObject({
      pictureId: 0x45,
      pictureId15: false,
      keyIdx: 31,
      size: 4,
    });
    expect(parseVp8Descriptor(Uint8Array.of(0x90, 0x90, 0x45, 0x1f))?.tid).toBeUndefined();
  });

  it("rejects descriptors cut short", () => {
    for (const bytes of [[], [0x90], [0x90, 0x80], [0x90, 0x80, 0x81], [0x90, 0x40], [0x90, 0x20], [0x90, 0x10]]) {
      expect(parseVp8Descriptor(Uint8Array.from(bytes))).toBeUndefined();
    }
  });
});

describe("parseVp8FrameHeader", () => {
  it("takes 14-bit width and height from a keyframe, masking the scale bits", () => {
    expect(parseVp8FrameHeader(Uint8Array.from(KEY))).toEqual({ keyframe: true, width: 320, height: 240 });
  });
  it("knows an inter frame by P=1", () => {
    expect(parseVp8FrameHeader(Uint8Array.from(INTER))).toEqual({ keyframe: false });
  });
  it("rejects a keyframe without the start code", () => {
    const bad = KEY.slice();
    bad[4] = 0x02;
    expect(parseVp8FrameHeader(Uint8Array.from(bad))).toBeUndefined();
  });
});

function collect(asm: Vp8Assembler, packets: ReturnType<typeof rtp>[]): Frame[] {
  return packets.flatMap((p) => asm.push(p));
}

describe("Vp8Assembler", () => {
  it("joins a keyframe sent in 3 packets with extended descriptors", () => {
    const asm = new Vp8Assembler();
    const frames = collect(asm, [
      // X=1 S=1 PID=0; I L T; PictureID 15-bit 0x1234; TL0PICIDX 7; TID 0
      rtp(1, 9000, false, [0x90, 0xe0, 0x92, 0x34, 0x07, 0x00, ...KEY.slice(0, 4)]),
      rtp(2, 9000, false, [0x80, 0xe0, 0x92, 0x34, 0x07, 0x00, ...KEY.slice(4, 8)]),
      rtp(3, 9000, true, [0x80, 0xe0, 0x92, 0x34, 0x07, 0x00, ...KEY.slice(8), 0xee]),
      rtp(4, 12000, true, [0x10, ...INTER]),
    ]);
    expect(frames).toEqual([
      { data: Buffer.from([...KEY, 0xee]), timestamp: 9000, keyframe: true, width: 320, height: 240 },
      { data: Buffer.from(INTER), timestamp: 12000, keyframe: false },
    ]);
    expect(asm.waitingForKeyframe).toBe(false);
  });

  it("drops everything before the first keyframe and asks for one once", () => {
    let asked = 0;
    const asm = new Vp8Assembler({ onKeyframeNeeded: () => asked++ });
    const frames = collect(asm, [
      rtp(1, 0, true, [0x10, ...INTER]),
      rtp(2, 3000, true, [0x10, ...INTER]),
      rtp(3, 6000, true, [0x10, ...KEY]),
      rtp(4, 9000, true, [0x10, ...INTER]),
    ]);
    expect(frames.map((f) => f.timestamp)).toEqual([6000, 9000]);
    expect(asked).toBe(1);
  });

  it("drops a frame with a lost packet and every frame until the next keyframe", () => {
    let asked = 0;
    const asm = new Vp8Assembler({ onKeyframeNeeded: () => asked++ });
    const out: Frame[] = [];
    out.push(...asm.push(rtp(1, 0, true, [0x10, ...KEY])));
    out.push(...asm.push(rtp(2, 3000, false, [0x10, ...INTER])));
    asm.lost(1); // seq 3
    expect(asked).toBe(1);
    out.push(...asm.push(rtp(4, 3000, true, [0x00, 0x99])));
    out.push(...asm.push(rtp(5, 6000, true, [0x10, ...INTER])));
    expect(asm.waitingForKeyframe).toBe(true);
    out.push(...asm.push(rtp(6, 9000, true, [0x10, ...KEY])));
    out.push(...asm.push(rtp(7, 12000, true, [0x10, ...INTER])));
    expect(out.map((f) => f.timestamp)).toEqual([0, 9000, 12000]);
    expect(asked).toBe(1);
  });

  it("drops a keyframe whose last packet (the marker) was lost", () => {
    const asm = new Vp8Assembler();
    expect(asm.push(rtp(1, 0, false, [0x10, ...KEY]))).toEqual([]);
    asm.lost(1);
    expect(asm.push(rtp(3, 3000, true, [0x10, ...INTER]))).toEqual([]);
    expect(asm.waitingForKeyframe).toBe(true);
  });

  it("treats a frame whose first packet has S=0 as damaged (joined mid-frame)", () => {
    let asked = 0;
    const asm = new Vp8Assembler({ onKeyframeNeeded: () => asked++ });
    expect(asm.push(rtp(1, 0, true, [0x00, 0x01, 0x02]))).toEqual([]);
    expect(asked).toBe(1);
  });

  it("treats a second partition-0 start in one frame as damage", () => {
    const asm = new Vp8Assembler();
    asm.push(rtp(1, 0, false, [0x10, ...KEY]));
    expect(asm.push(rtp(2, 0, true, [0x10, ...KEY]))).toEqual([]);
  });

  it("accepts S=1 on a later partition", () => {
    const asm = new Vp8Assembler();
    asm.push(rtp(1, 0, false, [0x10, ...KEY]));
    expect(asm.push(rtp(2, 0, true, [0x11, 0x77]))[0].data).toEqual(Buffer.from([...KEY, 0x77]));
  });

  it("closes a frame on a timestamp change when the marker is missing", () => {
    const asm = new Vp8Assembler();
    expect(asm.push(rtp(1, 0, false, [0x10, ...KEY]))).toEqual([]);
    expect(asm.push(rtp(2, 3000, false, [0x10, ...INTER])).map((f) => f.timestamp)).toEqual([0]);
    // An unterminated frame at the end of the stream is not trusted.
    expect(asm.flush()).toEqual([]);
  });

  it("asks again every keyframeRetryFrames dropped frames", () => {
    let asked = 0;
    const asm = new Vp8Assembler({ onKeyframeNeeded: () => asked++, keyframeRetryFrames: 3 });
    for (let i = 0; i < 7; i++) asm.push(rtp(i, i * 3000, true, [0x10, ...INTER]));
    expect(asked).toBe(3); // frames 0, 3, 6
  });

  it("reassembles reordered packets across the sequence number wrap via ReorderBuffer", () => {
    const reorder = new ReorderBuffer<RtpView>(64, 1);
    const asm = new Vp8Assembler();
    const packets = [
      rtp(65534, 0, false, [0x10, ...KEY.slice(0, 5)]),
      rtp(65535, 0, false, [0x00, ...KEY.slice(5)]),
      rtp(0, 0, true, [0x00, 0xf1]),
      rtp(1, 3000, false, [0x10, ...INTER.slice(0, 2)]),
      rtp(2, 3000, true, [0x00, ...INTER.slice(2)]),
    ];
    const order = [0, 2, 1, 4, 3];
    const frames = order.flatMap((i) => reorder.push(packets[i])).flatMap((item) => asm.feed(item));
    expect(frames.map((f) => [f.timestamp, f.data.toString("hex")])).toEqual([
      [0, Buffer.from([...KEY, 0xf1]).toString("hex")],
      [3000, Buffer.from(INTER).toString("hex")],
    ]);
  });

  it("works from ReorderBuffer items through feed()", () => {
    const asm = new Vp8Assembler();
    expect(asm.feed({ type: "packet", packet: rtp(1, 0, true, [0x10, ...KEY]) })).toHaveLength(1);
    expect(asm.feed({ type: "lost", count: 2 })).toEqual([]);
    expect(asm.feed({ type: "packet", packet: rtp(4, 3000, true, [0x10, ...INTER]) })).toEqual([]);
  });
});
