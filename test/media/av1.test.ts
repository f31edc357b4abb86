import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Frame } from "../../src/media/assembler.js";
import { Av1Assembler, parseAv1AggregationHeader, parseAv1SequenceHeader, readLeb128, writeLeb128 } from "../../src/media/av1.js";
import { IvfWriter } from "../../src/media/ivf.js";
import { ReorderBuffer } from "../../src/media/reorder.js";
import type { RtpView } from "../../src/media/rtp.js";
import { BitWriter, decodeErrors, ffmpegFile, ffprobe, makeTempDir, rtp, writeTemp } from "./helpers.js";

const tmp = makeTempDir();
afterAll(tmp.remove);

/** OBUs of a low-overhead bitstream (every OBU with a size field), grouped per temporal unit. */
function temporalUnits(bytes: Buffer): Buffer[][] {
  const units: Buffer[][] = [];
  for (let o = 0; o < bytes.length; ) {
    const headerLen = bytes[o] & 0x04 ? 2 : 1;
    const leb = readLeb128(bytes, o + headerLen)!;
    const end = o + headerLen + leb.length + leb.value;
    const type = (bytes[o] >> 3) & 0x0f;
    if (type === 2) units.push([]);
    else units[units.length - 1].push(bytes.subarray(o, end));
    o = end;
  }
  return units;
}

/** Strips obu_has_size_field, as RTP senders do. */
function stripSize(obu: Buffer): Buffer {
  const headerLen = obu[0] & 0x04 ? 2 : 1;
  const leb = readLeb128(obu, headerLen)!;
  const header = Buffer.from(obu.subarray(0, headerLen));
  header[0] &= ~0x02;
  return Buffer.concat([header, obu.subarray(headerLen + leb.length)]);
}

/**
 * A test-side AV1 packetizer (AOM RTP spec §4–5): OBUs packed into packets of at most `mtu`
 * bytes, fragmented with Z/Y, elements length-prefixed (W=0) or with W set when `useW`.
 */
function packetize(unit: Buffer[], mtu: number, useW: boolean): Buffer[] {
  const packets: Buffer[] = [];
  const newSequence = unit.some((o) => ((o[0] >> 3) & 15) === 1);
  let elements: Buffer[] = [];
  let size = 1;
  let z = false;
  const flush = (y: boolean): void => {
    const w = useW && elements.length <= 3 ? elements.length : 0;
    const body = elements.map((e, k) => (w !== 0 && k === elements.length - 1 ? e : Buffer.concat([writeLeb128(e.length), e])));
    const n = packets.length === 0 && newSequence;
    packets.push(Buffer.concat([Buffer.from([(z ? 0x80 : 0) | (y ? 0x40 : 0) | (w << 4) | (n ? 0x08 : 0)]), ...body]));
    elements = [];
    size = 1;
    z = y; // a packet that ends inside an OBU makes the next one start with its continuation
  };
  for (const obu of unit.map(stripSize)) {
    let rest = obu;
    for (;;) {
      const room = mtu - size - 2; // 2 bytes of LEB128 cover any length below 16 384
      if (room <= 0) {
        flush(false);
        continue;
      }
      if (rest.length <= room) {
        elements.push(rest);
        size += writeLeb128(rest.length).length + rest.length;
        break;
      }
      elements.push(rest.subarray(0, room));
      rest = rest.subarray(room);
      flush(true);
    }
  }
  flush(false);
  return packets;
}

describe("LEB128", () => {
  it("reads and writes", () => {
    expect(writeLeb128(0)).toEqual(Buffer.from([0]));
    expect(writeLeb128(127)).toEqual(Buffer.from([0x7f]));
    expect(writeLeb128(128)).toEqual(Buffer.from([0x80, 0x01]));
    expect(writeLeb128(300)).toEqual(Buffer.from([0xac, 0x02]));
    expect(readLeb128(Buffer.from([0xff, 0xac, 0x02]), 1)).toEqual({ value: 300, length: 2 });
    expect(readLeb128(Buffer.from([0x80, 0x80]), 0)).toBeUndefined();
    expect(readLeb128(Buffer.alloc(9, 0x80), 0)).toBeUndefined();
  });
});

describe("parseAv1AggregationHeader", () => {
  it("reads Z, Y, W, N", () => {
    expect(parseAv1AggregationHeader(0xd8)).toEqual({ continuation: true, continues: true, elementCount: 1, newSequence: true });
    expect(parseAv1AggregationHeader(0x20)).toEqual({ continuation: false, continues: false, elementCount: 2, newSequence: false });
  });
});

describe("parseAv1SequenceHeader", () => {
  it("reads a reduced still picture header and one with timing and decoder model info", () => {
    const still = new BitWriter().u(3, 0).u(1, 1).u(1, 1).u(5, 8).u(4, 10).u(4, 9).u(11, 639).u(10, 479).bytes();
    expect(parseAv1SequenceHeader(still)).toEqual({ profile: 0, width: 640, height: 480 });
    const full = new BitWriter()
      .u(3, 1)
      .u(1, 0)
      .u(1, 0)
      .u(1, 1)
      .u(32, 1)
      .u(32, 30)
      .u(1, 1)
      .u(3, 0b010)
      .u(1, 1) // timing info, uvlc() = 1, decoder model
      .u(5, 9)
      .u(32, 1)
      .u(5, 4)
      .u(5, 4) // buffer_delay_length 10
      .u(1, 1)
      .u(5, 1) // initial_display_delay_present, 2 operating points
      .u(12, 0x101)
      .u(5, 9)
      .u(1, 1)
      .u(1, 1)
      .u(10, 5)
      .u(10, 6)
      .u(1, 0)
      .u(1, 1)
      .u(4, 3)
      .u(12, 0)
      .u(5, 4)
      .u(1, 0)
      .u(1, 0)
      .u(4, 11)
      .u(4, 10)
      .u(12, 1919)
      .u(11, 1079)
      .bytes();
    expect(parseAv1SequenceHeader(full)).toEqual({ profile: 1, width: 1920, height: 1080 });
    expect(parseAv1SequenceHeader(full.subarray(0, 20))).toBeUndefined();
  });
});

describe("Av1Assembler", () => {
  // A fake sequence header OBU (no size field) for a 16x16 reduced still picture, and a frame OBU.
  const seq = Buffer.concat([Buffer.from([0x08]), new BitWriter().u(3, 0).u(1, 1).u(1, 1).u(5, 0).u(4, 3).u(4, 3).u(4, 15).u(4, 15).bytes()]);
  const frame = Buffer.from([0x30, 0x10, 0x20, 0x30, 0x40]);
  const sized = (obu: Buffer): Buffer => Buffer.concat([Buffer.from([obu[0] | 0x02]), writeLeb128(obu.length - 1), obu.subarray(1)]);
  const td = [0x12, 0x00];

  it("rebuilds size fields, drops a sent temporal delimiter, prepends its own", () => {
    const asm = new Av1Assembler();
    // W=0: two length-prefixed elements, plus a temporal delimiter the sender should have dropped.
    const [f] = asm.push(rtp(1, 0, true, [0x08, 1, 0x10, seq.length, ...seq, frame.length, ...frame]));
    expect(f).toMatchObject({ keyframe: true, width: 16, height: 16 });
    expect(f.data).toEqual(Buffer.from([...td, ...sized(seq), ...sized(frame)]));
  });

  it("joins an OBU fragmented over 3 packets (Z/Y) with W=1", () => {
    const asm = new Av1Assembler();
    const big = Buffer.concat([Buffer.from([0x30]), Buffer.alloc(300, 7)]);
    const out = [
      rtp(1, 0, false, [0x28 | 0x40, seq.length, ...seq, ...big.subarray(0, 100)]), // W=2 N Y
      rtp(2, 0, false, [0xd0, ...big.subarray(100, 200)]), // Z Y W=1
      rtp(3, 0, true, [0x90, ...big.subarray(200)]), // Z W=1
    ].flatMap((p) => asm.push(p));
    expect(out).toHaveLength(1);
    expect(out[0].data).toEqual(Buffer.from([...td, ...sized(seq), ...sized(big)]));
  });

  it("keeps a size field the sender left in and drops the frame when a fragment is lost", () => {
    let asked = 0;
    const asm = new Av1Assembler({ onKeyframeNeeded: () => asked++ });
    const [f] = asm.push(rtp(1, 0, true, [0x28, sized(seq).length, ...sized(seq), ...sized(frame)])); // W=2 N, with sizes
    expect(f.data).toEqual(Buffer.from([...td, ...sized(seq), ...sized(frame)]));
    expect(asm.push(rtp(2, 3000, false, [0x50, ...frame]))).toEqual([]); // Y
    asm.lost(1);
    expect(asm.push(rtp(4, 3000, true, [0x90, 0x55]))).toEqual([]);
    expect(asked).toBe(1);
    // A fragment tail without its head, reported or not, is damage too.
    expect(asm.push(rtp(5, 6000, true, [0x90, 0x55]))).toEqual([]);
    expect(asm.push(rtp(6, 9000, true, [0x18, ...seq]))).toHaveLength(1);
  });

  it("does not start without N, nor on N without any sequence header", () => {
    const asm = new Av1Assembler();
    expect(asm.push(rtp(1, 0, true, [0x10, ...frame]))).toEqual([]);
    expect(asm.push(rtp(2, 3000, true, [0x18, ...frame]))).toEqual([]);
    expect(asm.waitingForKeyframe).toBe(true);
  });

  it("rejects bad element lengths and the forbidden bit", () => {
    // Length past the end, zero length, cut LEB128, forbidden bit, an element holding two OBUs.
    for (const payload of [
      [0x00, 0x05, 0x30],
      [0x00, 0x00],
      [0x00, 0x80],
      [0x10, 0xb0, 0x00],
      [0x10, 0x32, 0x01, 0x10, 0x32, 0x01, 0x10],
    ]) {
      const asm = new Av1Assembler();
      expect(asm.push(rtp(1, 0, true, payload))).toEqual([]);
    }
  });

  for (const useW of [false, true]) {
    it(`libaom stream → RTP (${useW ? "W set" : "W=0"}, MTU 300) → IVF plays in FFmpeg`, async () => {
      const src = join(tmp.dir, `src-${useW}.obu`);
      await ffmpegFile([
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-t",
        "2",
        "-c:v",
        "libaom-av1",
        "-usage",
        "realtime",
        "-cpu-used",
        "8",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        src,
      ]);
      const units = temporalUnits(readFileSync(src));
      expect(units).toHaveLength(60);
      const packets: RtpView[] = [];
      units.forEach((unit, t) => {
        const ps = packetize(unit, 300, useW);
        ps.forEach((payload, k) => {
          packets.push(rtp(packets.length, t * 3000, k === ps.length - 1, payload));
        });
      });
      expect(packets.some((p) => p.payload[0] & 0x80)).toBe(true); // fragments were exercised
      const reorder = new ReorderBuffer<RtpView>();
      const asm = new Av1Assembler();
      const frames: Frame[] = [];
      for (const p of packets) for (const item of reorder.push(p)) frames.push(...asm.feed(item));
      for (const item of reorder.flush()) frames.push(...asm.feed(item));
      expect(frames).toHaveLength(60);
      expect(frames[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
      // Same OBUs as the encoder wrote, temporal delimiters included.
      expect(Buffer.concat(frames.map((f) => f.data))).toEqual(readFileSync(src));
      const w = new IvfWriter({ fourcc: "AV01", width: 320, height: 240 });
      const body = frames.map((f) => w.frame(f.data, f.timestamp));
      const file = writeTemp(tmp.dir, `av1-${useW}.ivf`, Buffer.concat([w.finalHeader(), ...body]));
      const probe = await ffprobe(file, true);
      expect(probe.streams[0]).toMatchObject({ codec_name: "av1", width: 320, height: 240, nb_read_frames: "60" });
      expect(Number(probe.format.duration)).toBe(2);
      expect(await decodeErrors(file)).toBe("");
    });
  }
});
