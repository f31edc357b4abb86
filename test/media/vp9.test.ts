import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { IvfWriter } from "../../src/media/ivf.js";
import { buildVp9Superframe, parseVp9Descriptor, parseVp9FrameHeader, Vp9Assembler } from "../../src/media/vp9.js";
import { BitWriter, decodeErrors, ffmpegFile, ffprobe, makeTempDir, rtp, writeTemp } from "./helpers.js";

const tmp = makeTempDir();
afterAll(tmp.remove);

/** VP9 uncompressed header start of a keyframe (frame_marker .. frame size). */
function keyHeader(profile: number, width: number, height: number, colorSpace = 2): Buffer {
  const w = new BitWriter()
    .u(2, 2)
    .u(1, profile & 1)
    .u(1, profile >> 1);
  if (profile === 3) w.u(1, 0);
  w.u(1, 0).u(1, 0).u(1, 1).u(1, 0); // show_existing_frame, frame_type KEY, show_frame, error_res
  w.u(8, 0x49).u(8, 0x83).u(8, 0x42);
  if (profile >= 2) w.u(1, 1); // ten_or_twelve_bit
  w.u(3, colorSpace);
  if (colorSpace !== 7) {
    w.u(1, 0);
    if (profile === 1 || profile === 3) w.u(1, 1).u(1, 0).u(1, 0);
  } else if (profile === 1 || profile === 3) {
    w.u(1, 0);
  }
  return w
    .u(16, width - 1)
    .u(16, height - 1)
    .u(1, 0)
    .u(8, 0xaa)
    .bytes();
}

describe("parseVp9Descriptor", () => {
  it("reads non-flexible mode with picture id, layers, TL0PICIDX and a full SS", () => {
    const d = parseVp9Descriptor(
      Uint8Array.of(
        0xaa, // I=1 P=0 L=1 F=0 B=1 E=0 V=1 Z=0
        0x81,
        0x02, // M=1, picture id 0x0102
        0x23, // TID=1 U=0 SID=1 D=1
        0x07, // TL0PICIDX
        0x38, // N_S=1 (2 layers) Y=1 G=1
        0x00,
        0xa0,
        0x00,
        0x78, // 160x120
        0x01,
        0x40,
        0x00,
        0xf0, // 320x240
        0x02, // N_G = 2
        0x04,
        0x01, // TID 0, R=1, P_DIFF 1
        0x38,
        0x01,
        0x02, // TID 1 U=1 R=2, P_DIFFs 1 2
        0xde, // VP9 data
      ),
    );
    expect(d).toEqual({
      interPicture: false,
      flexible: false,
      beginning: true,
      end: false,
      notRefForUpperLayer: false,
      pictureId: 0x0102,
      tid: 1,
      switchingUp: false,
      sid: 1,
      interLayer: true,
      tl0PicIdx: 7,
      pDiffs: [],
      ss: {
        spatialLayers: 2,
        resolutions: [
          { width: 160, height: 120 },
          { width: 320, height: 240 },
        ],
        pictureGroup: [
          { tid: 0, switchingUp: false, pDiffs: [1] },
          { tid: 1, switchingUp: true, pDiffs: [1, 2] },
        ],
      },
      size: 20,
    });
  });

  it("reads flexible mode P_DIFFs with a 7-bit picture id, no TL0PICIDX", () => {
    // I=1 P=1 L=1 F=1 B=0 E=1
    const d = parseVp9Descriptor(Uint8Array.of(0xf4, 0x05, 0x40, 0x03, 0x06, 0x99));
    expect(d).toMatchObject({ interPicture: true, flexible: true, end: true, pictureId: 5, tid: 2, sid: 0, pDiffs: [1, 3], size: 5 });
    expect(d?.tl0PicIdx).toBeUndefined();
  });

  it("rejects a fourth P_DIFF and descriptors cut short", () => {
    expect(parseVp9Descriptor(Uint8Array.of(0x50, 0x03, 0x03, 0x03, 0x03))).toBeUndefined();
    for (const bytes of [[], [0x80], [0x80, 0x81], [0x20], [0x20, 0x00], [0x02], [0x02, 0x10, 0x00], [0x02, 0x08]]) {
      expect(parseVp9Descriptor(Uint8Array.from(bytes))).toBeUndefined();
    }
  });
});

describe("parseVp9FrameHeader", () => {
  it("reads the size of keyframes in profiles 0-3 and RGB", () => {
    expect(parseVp9FrameHeader(keyHeader(0, 320, 240))).toEqual({ profile: 0, showExistingFrame: false, keyframe: true, width: 320, height: 240 });
    expect(parseVp9FrameHeader(keyHeader(1, 1920, 1080))).toMatchObject({ profile: 1, width: 1920, height: 1080 });
    expect(parseVp9FrameHeader(keyHeader(2, 641, 359))).toMatchObject({ profile: 2, width: 641, height: 359 });
    expect(parseVp9FrameHeader(keyHeader(3, 8, 65536))).toMatchObject({ profile: 3, width: 8, height: 65536 });
    expect(parseVp9FrameHeader(keyHeader(1, 100, 50, 7))).toMatchObject({ profile: 1, width: 100, height: 50 });
  });

  it("knows inter frames and show_existing_frame, rejects a bad marker or sync code", () => {
    expect(parseVp9FrameHeader(Uint8Array.of(0x86, 0x00))).toEqual({ profile: 0, showExistingFrame: false, keyframe: false });
    expect(parseVp9FrameHeader(Uint8Array.of(0x88))).toEqual({ profile: 0, showExistingFrame: true, keyframe: false });
    expect(parseVp9FrameHeader(Uint8Array.of(0x42, 0x49, 0x83, 0x42))).toBeUndefined();
    const bad = keyHeader(0, 320, 240);
    bad[2] ^= 0x10;
    expect(parseVp9FrameHeader(bad)).toBeUndefined();
    expect(parseVp9FrameHeader(keyHeader(0, 320, 240).subarray(0, 5))).toBeUndefined();
  });

  it("agrees with real libvpx-vp9 keyframes: 4:2:0 (profile 0) and RGB (profile 1)", async () => {
    for (const [pixFmt, profile] of [
      ["yuv420p", 0],
      ["gbrp", 1],
    ] as const) {
      const file = join(tmp.dir, `k-${pixFmt}.ivf`);
      await ffmpegFile(["-f", "lavfi", "-i", "testsrc=size=352x288:rate=30", "-frames:v", "1", "-pix_fmt", pixFmt, "-c:v", "libvpx-vp9", file]);
      const first = readFileSync(file).subarray(32 + 12);
      expect(parseVp9FrameHeader(first)).toMatchObject({ profile, keyframe: true, width: 352, height: 288 });
    }
  });
});

describe("buildVp9Superframe", () => {
  it("appends the index with the smallest size field", () => {
    const a = Buffer.alloc(3, 1);
    const b = Buffer.alloc(300, 2);
    const sf = buildVp9Superframe([a, b]);
    expect(sf.subarray(303)).toEqual(Buffer.from([0xc9, 0x03, 0x00, 0x2c, 0x01, 0xc9]));
    expect(buildVp9Superframe([a])).toEqual(a);
    expect(buildVp9Superframe([a, a, a]).subarray(9)).toEqual(Buffer.from([0xc2, 3, 3, 3, 0xc2]));
  });

  it("is read by FFmpeg: two real frames joined still decode as two", async () => {
    const src = join(tmp.dir, "two.ivf");
    await ffmpegFile(["-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-frames:v", "10", "-c:v", "libvpx-vp9", "-lag-in-frames", "0", "-g", "100", src]);
    const bytes = readFileSync(src);
    const frames: Buffer[] = [];
    for (let o = 32; o < bytes.length; ) {
      const size = bytes.readUInt32LE(o);
      frames.push(bytes.subarray(o + 12, o + 12 + size));
      o += 12 + size;
    }
    expect(frames).toHaveLength(10);
    const w = new IvfWriter({ fourcc: "VP90", width: 160, height: 120 });
    const out = [w.fileHeader(), w.frame(buildVp9Superframe([frames[0], frames[1]]), 0)];
    frames.slice(2).forEach((f, k) => {
      out.push(w.frame(f, (k + 1) * 3000));
    });
    const file = writeTemp(tmp.dir, "joined.ivf", Buffer.concat(out));
    const probe = await ffprobe(file, true);
    expect(probe.streams[0].nb_read_frames).toBe("10");
    expect(await decodeErrors(file)).toBe("");
  });
});

describe("Vp9Assembler", () => {
  const key = keyHeader(0, 320, 240);
  it("joins packets of a keyframe, taking the size from the frame header", () => {
    const asm = new Vp9Assembler();
    const frames = [
      rtp(1, 0, false, [0x08, ...key.subarray(0, 5)]), // B
      rtp(2, 0, true, [0x04, ...key.subarray(5)]), // E
      rtp(3, 3000, true, [0x4c, 0x86, 0x00, 0x01]), // P B E
    ].flatMap((p) => asm.push(p));
    expect(frames).toEqual([
      { data: key, timestamp: 0, keyframe: true, width: 320, height: 240 },
      { data: Buffer.from([0x86, 0x00, 0x01]), timestamp: 3000, keyframe: false },
    ]);
  });

  it("builds a superframe from two spatial layers and takes the size from the SS", () => {
    const asm = new Vp9Assembler();
    const l1 = keyHeader(0, 160, 120); // the size of the SS wins: the top layer is what plays
    const frames = [
      // B E V, L: SID 0; SS 2 layers with Y
      rtp(1, 0, false, [0x2e, 0x00, 0x00, 0x30, 0x00, 0xa0, 0x00, 0x78, 0x01, 0x40, 0x00, 0xf0, ...l1]),
      // B, L: SID 1 D=1 (inter-layer, so P stays 0)
      rtp(2, 0, false, [0x28, 0x03, 0x00, 0x86, 0x01]),
      rtp(3, 0, true, [0x24, 0x03, 0x00, 0x02]),
    ].flatMap((p) => asm.push(p));
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
    expect(frames[0].data).toEqual(buildVp9Superframe([l1, Buffer.from([0x86, 0x01, 0x02])]));
  });

  it("drops a layer frame that never ended before the next began, and waits for a keyframe", () => {
    let asked = 0;
    const asm = new Vp9Assembler({ onKeyframeNeeded: () => asked++ });
    asm.push(rtp(1, 0, true, [0x0c, ...key]));
    expect(asm.push(rtp(2, 3000, false, [0x48, 0x86]))).toEqual([]);
    expect(asm.push(rtp(3, 3000, true, [0x4c, 0x86]))).toEqual([]);
    expect(asked).toBe(1);
    expect(asm.push(rtp(4, 6000, true, [0x4c, 0x86]))).toEqual([]);
    expect(asm.push(rtp(5, 9000, true, [0x0c, ...key]))).toHaveLength(1);
  });

  it("does not start on an intra-only frame (P=0 but not a keyframe)", () => {
    const asm = new Vp9Assembler();
    expect(asm.push(rtp(1, 0, true, [0x0c, 0x86, 0x00]))).toEqual([]);
    expect(asm.waitingForKeyframe).toBe(true);
  });

  it("drops a frame that starts without B", () => {
    const asm = new Vp9Assembler();
    expect(asm.push(rtp(1, 0, true, [0x04, ...key]))).toEqual([]);
  });
});
