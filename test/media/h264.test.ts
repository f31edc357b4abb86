import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { splitAnnexB } from "../../src/media/annexb.js";
import type { Frame } from "../../src/media/assembler.js";
import { H264Assembler, parseSpropParameterSets } from "../../src/media/h264.js";
import { parseH264Sps, unescapeRbsp } from "../../src/media/h264-sps.js";
import { BitWriter, ffmpegFile, ffprobe, makeTempDir, rtp } from "./helpers.js";

const tmp = makeTempDir();
afterAll(tmp.remove);

// Hand-made NAL units: only their types and first bytes matter to the assembler.
const SPS = [0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x40]; // id 0
const PPS = [0x68, 0xce, 0x3c, 0x80]; // id 0
const AUD = [0x09, 0xf0];
const SEI = [0x06, 0x05, 0x01, 0x00, 0x80];
const IDR = [0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x10, 0x20, 0x30]; // first_mb_in_slice = 0
const SLICE = [0x41, 0x9a, 0x02, 0x03];
const SLICE_2ND = [0x41, 0x40, 0x05, 0x06]; // first_mb_in_slice = 1: not a picture's first slice
const sc = [0, 0, 0, 1];

function stapA(...nals: number[][]): number[] {
  return [0x78, ...nals.flatMap((n) => [n.length >> 8, n.length & 0xff, ...n])];
}
/** FU-A fragments of `nal` split at the given payload offsets. */
function fuA(nal: number[], cuts: number[]): number[][] {
  const indicator = (nal[0] & 0xe0) | 28;
  const type = nal[0] & 0x1f;
  const body = nal.slice(1);
  const bounds = [0, ...cuts, body.length];
  return bounds.slice(0, -1).map((from, k) => {
    const s = k === 0 ? 0x80 : 0;
    const e = k === bounds.length - 2 ? 0x40 : 0;
    return [indicator, s | e | type, ...body.slice(from, bounds[k + 1])];
  });
}

describe("H264Assembler", () => {
  it("joins STAP-A(SPS, PPS) + FU-A IDR in 3 fragments into one Annex B access unit", () => {
    const asm = new H264Assembler();
    const [f1, f2, f3] = fuA(IDR, [3, 6]);
    const frames = [rtp(10, 3000, false, stapA(SPS, PPS)), rtp(11, 3000, false, f1), rtp(12, 3000, false, f2), rtp(13, 3000, true, f3)].flatMap((p) =>
      asm.push(p),
    );
    expect(frames).toHaveLength(1);
    expect(frames[0].data).toEqual(Buffer.from([...sc, ...SPS, ...sc, ...PPS, ...sc, ...IDR]));
    expect(frames[0]).toMatchObject({ timestamp: 3000, keyframe: true });
  });

  it("reads the picture size from the access unit's SPS", () => {
    // Baseline 320x240: 20x15 macroblocks, no cropping.
    const sps = new BitWriter()
      .u(8, 0x67)
      .u(8, 66)
      .u(8, 0xc0)
      .u(8, 30)
      .ue(0)
      .ue(0)
      .ue(2)
      .ue(3)
      .u(1, 0)
      .ue(19)
      .ue(14)
      .u(1, 1)
      .u(1, 1)
      .u(1, 0)
      .u(1, 0)
      .trailing()
      .bytes();
    const asm = new H264Assembler();
    const [frame] = asm.push(rtp(1, 0, true, stapA([...sps], PPS, IDR)));
    expect(frame).toMatchObject({ keyframe: true, width: 320, height: 240 });
  });

  it("passes single NAL packets of an inter frame through with start codes", () => {
    const asm = new H264Assembler();
    asm.push(rtp(1, 0, true, stapA(SPS, PPS, IDR)));
    const [f] = [rtp(2, 3000, false, SLICE), rtp(3, 3000, true, SLICE_2ND)].flatMap((p) => asm.push(p));
    expect(f.data).toEqual(Buffer.from([...sc, ...SLICE, ...sc, ...SLICE_2ND]));
    expect(f.keyframe).toBe(false);
    expect(f.width).toBeUndefined();
  });

  it("drops the frame whose FU-A middle fragment was lost, and all until the next IDR", () => {
    let asked = 0;
    const asm = new H264Assembler({ onKeyframeNeeded: () => asked++ });
    const out: Frame[] = [];
    out.push(...asm.push(rtp(1, 0, true, stapA(SPS, PPS, IDR))));
    const [a, , c] = fuA(SLICE, [1, 2]);
    out.push(...asm.push(rtp(2, 3000, false, a)));
    asm.lost(1);
    out.push(...asm.push(rtp(4, 3000, true, c)));
    out.push(...asm.push(rtp(5, 6000, true, SLICE)));
    expect(asked).toBe(1);
    const [i1, i2, i3] = fuA(IDR, [2, 4]);
    out.push(...[rtp(6, 9000, false, i1), rtp(7, 9000, false, i2), rtp(8, 9000, true, i3)].flatMap((p) => asm.push(p)));
    expect(out.map((f) => [f.timestamp, f.keyframe])).toEqual([
      [0, true],
      [9000, true],
    ]);
    // The second IDR came without SPS/PPS: the ones seen in-band before are put in front.
    expect(splitAnnexB(out[1].data).map((n) => n[0] & 0x1f)).toEqual([7, 8, 5]);
  });

  it("catches a lost FU-A middle even without a loss report (end without start)", () => {
    const asm = new H264Assembler();
    asm.push(rtp(1, 0, true, stapA(SPS, PPS, IDR)));
    const [, b, c] = fuA(SLICE, [1, 2]);
    expect([rtp(3, 3000, false, b), rtp(4, 3000, true, c)].flatMap((p) => asm.push(p))).toEqual([]);
    expect(asm.waitingForKeyframe).toBe(true);
  });

  it("drops a frame whose FU-A never ended", () => {
    const asm = new H264Assembler();
    const [a, b] = fuA(IDR, [2, 4]);
    expect([rtp(1, 0, false, stapA(SPS, PPS)), rtp(2, 0, false, a), rtp(3, 0, true, b)].flatMap((p) => asm.push(p))).toEqual([]);
  });

  it("rejects a frame that starts with a picture's second slice (joined mid-frame)", () => {
    const asm = new H264Assembler();
    expect(asm.push(rtp(1, 0, false, SLICE_2ND))).toEqual([]);
    expect(asm.push(rtp(2, 0, true, [0x65, 0x40, 0x01]))).toEqual([]);
    expect(asm.waitingForKeyframe).toBe(true);
  });

  it("rejects malformed STAP-A sizes, the F bit and interleaved-mode packet types", () => {
    for (const payload of [
      [0x78, 0x00, 0x09, ...SPS.slice(0, 5)], // size beyond the packet
      [0x78, 0x00, 0x00], // zero size
      [0x78, 0x00], // truncated size
      [0xe5, 0x88, 0x80], // F=1
      [0x79, 0x00, 0x00], // STAP-B
      [0x7d, 0x85, 0x00], // FU-B
    ]) {
      const asm = new H264Assembler();
      asm.push(rtp(1, 0, true, stapA(SPS, PPS, IDR)));
      expect(asm.push(rtp(2, 3000, true, payload))).toEqual([]);
      expect(asm.waitingForKeyframe).toBe(true);
    }
  });

  it("cannot start on an IDR without any SPS/PPS, and asks for a keyframe", () => {
    let asked = 0;
    const asm = new H264Assembler({ onKeyframeNeeded: () => asked++ });
    expect(asm.push(rtp(1, 0, true, IDR))).toEqual([]);
    expect(asked).toBe(1);
  });

  it("puts sprop-parameter-sets after the AUD of an IDR access unit that lacks them", () => {
    const sprop = `${Buffer.from(SPS).toString("base64")},${Buffer.from(PPS).toString("base64")}`;
    const asm = new H264Assembler({ spropParameterSets: sprop });
    const [f] = asm.push(rtp(1, 0, true, stapA(AUD, SEI, IDR)));
    expect(f.data).toEqual(Buffer.from([...sc, ...AUD, ...sc, ...SPS, ...sc, ...PPS, ...sc, ...SEI, ...sc, ...IDR]));
    expect(f.keyframe).toBe(true);
  });

  it("adds only the missing parameter set", () => {
    const asm = new H264Assembler({ spropParameterSets: Buffer.from(PPS).toString("base64") });
    const [f] = asm.push(rtp(1, 0, true, stapA(SPS, IDR)));
    expect(splitAnnexB(f.data).map((n) => n[0] & 0x1f)).toEqual([8, 7, 5]);
  });

  it("keeps one SPS and PPS per id, in-band ones replacing the SDP's", () => {
    const pps1 = [0x68, 0x5e, 0x3c, 0x80]; // pic_parameter_set_id 1 (ue '010')
    const spsNew = [...SPS.slice(0, 4), 0xdb]; // same id 0, different content
    const sprop = [SPS, PPS].map((n) => Buffer.from(n).toString("base64")).join(",");
    const asm = new H264Assembler({ spropParameterSets: sprop });
    asm.push(rtp(1, 0, true, stapA(spsNew, pps1, IDR)));
    const [f] = asm.push(rtp(2, 3000, true, IDR));
    expect(splitAnnexB(f.data).map((n) => [...n])).toEqual([spsNew, PPS, pps1, IDR]);
  });
});

describe("parseSpropParameterSets", () => {
  it("decodes base64 entries and skips junk", () => {
    expect(parseSpropParameterSets("Z0IAH5WoFAFuQA==,aM48gA==")).toEqual([Buffer.from("6742001f95a814016e40", "hex"), Buffer.from("68ce3c80", "hex")]);
    expect(parseSpropParameterSets(" , !!, aM48gA== ")).toEqual([Buffer.from("68ce3c80", "hex")]);
  });
});

describe("parseH264Sps", () => {
  it("removes emulation prevention bytes", () => {
    expect([...unescapeRbsp(Uint8Array.of(1, 0, 0, 3, 0, 0, 3, 1, 0, 3))]).toEqual([1, 0, 0, 0, 0, 1, 0, 3]);
  });

  it("parses pic_order_cnt_type 1, escaped bytes and 4:2:0 cropping", () => {
    // Main profile 1280x720 (80x45 MBs, no crop) with a POC cycle; then 1920x1080 (1088 - 2*4).
    const make = (hMbs: number, crop: number[] | undefined): Buffer => {
      const w = new BitWriter()
        .u(8, 0x67)
        .u(8, 77)
        .u(8, 0)
        .u(8, 40)
        .ue(0)
        .ue(0) // sps id, log2_max_frame_num_minus4
        .ue(1)
        .u(1, 0)
        .se(-2)
        .se(3)
        .ue(2)
        .se(1)
        .se(-1) // POC type 1 with two cycle offsets
        .ue(1)
        .u(1, 0)
        .ue(hMbs === 45 ? 79 : 119)
        .ue(hMbs - 1)
        .u(1, 1)
        .u(1, 1);
      if (crop) w.u(1, 1).ue(crop[0]).ue(crop[1]).ue(crop[2]).ue(crop[3]);
      else w.u(1, 0);
      return w.u(1, 0).trailing().bytes();
    };
    expect(parseH264Sps(make(45, undefined))).toMatchObject({ profileIdc: 77, width: 1280, height: 720 });
    expect(parseH264Sps(make(68, [0, 0, 0, 4]))).toMatchObject({ width: 1920, height: 1080 });
    // The same SPS with an emulation prevention byte inserted where the RBSP has 00 00 0x.
    const raw = new BitWriter()
      .u(8, 0x67)
      .u(8, 66)
      .u(8, 0)
      .u(8, 0)
      .ue(0)
      .ue(0)
      .ue(2)
      .ue(0)
      .u(1, 0)
      .ue(0)
      .ue(0)
      .u(1, 1)
      .u(1, 1)
      .u(1, 0)
      .u(1, 0)
      .trailing()
      .bytes();
    expect([...raw.subarray(0, 4)]).toEqual([0x67, 66, 0, 0]);
    const escaped = Buffer.concat([raw.subarray(0, 4), Buffer.from([3]), raw.subarray(4)]);
    expect(parseH264Sps(escaped)).toMatchObject({ profileIdc: 66, levelIdc: 0, width: 16, height: 16 });
  });

  it("skips sequence scaling lists (x264 puts its lists in the PPS, so these are hand-made)", () => {
    const list = (w: BitWriter, values: number[]): void => {
      let last = 8;
      for (const v of values) {
        w.se(((v - last + 128) & 0xff) - 128);
        last = v;
      }
    };
    for (const chroma of [1, 3]) {
      const w = new BitWriter().u(8, 0x67).u(8, 100).u(8, 0).u(8, 31).ue(0);
      w.ue(chroma);
      if (chroma === 3) w.u(1, 0); // separate_colour_plane_flag
      w.ue(0).ue(0).u(1, 0).u(1, 1); // 8-bit, no bypass, seq_scaling_matrix_present_flag
      const lists = chroma === 3 ? 12 : 8;
      for (let i = 0; i < lists; i++) {
        const size = i < 6 ? 16 : 64;
        if (i === 1) {
          w.u(1, 0); // not present: fall-back rule
        } else if (i === 2) {
          w.u(1, 1).se(-8); // delta to 0 on the first entry: "use default", one value only
        } else {
          w.u(1, 1);
          list(
            w,
            Array.from({ length: size }, (_, j) => 4 + ((j * 37 + i * 11) % 250)),
          );
        }
      }
      w.ue(0).ue(0).ue(0).ue(1).u(1, 0).ue(39).ue(29).u(1, 1).u(1, 1).u(1, 1).ue(0).ue(2).ue(0).ue(1).u(1, 0).trailing();
      // 640x480 MB grid, cropped by 2 units right and 1 unit bottom.
      const unitX = chroma === 3 ? 1 : 2;
      const unitY = chroma === 3 ? 1 : 2;
      expect(parseH264Sps(w.bytes())).toMatchObject({ chromaFormatIdc: chroma, width: 640 - 2 * unitX, height: 480 - unitY });
    }
  });

  it("rejects non-SPS and truncated input", () => {
    expect(parseH264Sps(Uint8Array.from(PPS))).toBeUndefined();
    expect(parseH264Sps(Uint8Array.of(0x67, 100, 0, 40, 0x80))).toBeUndefined();
  });

  // The real encoder is the ground truth: x264 SPSs across profiles, cropping and field coding.
  const cases: { name: string; args: string[]; profile: number; chroma: number; depth: number; frameMbsOnly: boolean; w: number; h: number }[] = [
    { name: "baseline 320x240", args: ["-profile:v", "baseline", "-pix_fmt", "yuv420p"], profile: 66, chroma: 1, depth: 8, frameMbsOnly: true, w: 320, h: 240 },
    {
      name: "high 1920x1080 (cropped from 1088)",
      args: ["-pix_fmt", "yuv420p", "-s", "1920x1080"],
      profile: 100,
      chroma: 1,
      depth: 8,
      frameMbsOnly: true,
      w: 1920,
      h: 1080,
    },
    { name: "high 330x250", args: ["-pix_fmt", "yuv420p", "-s", "330x250"], profile: 100, chroma: 1, depth: 8, frameMbsOnly: true, w: 330, h: 250 },
    { name: "High 10", args: ["-pix_fmt", "yuv420p10le"], profile: 110, chroma: 1, depth: 10, frameMbsOnly: true, w: 320, h: 240 },
    { name: "High 4:2:2", args: ["-pix_fmt", "yuv422p", "-s", "322x238"], profile: 122, chroma: 2, depth: 8, frameMbsOnly: true, w: 322, h: 238 },
    { name: "High 4:4:4 odd size", args: ["-pix_fmt", "yuv444p", "-s", "321x241"], profile: 244, chroma: 3, depth: 8, frameMbsOnly: true, w: 321, h: 241 },
    {
      name: "interlaced 720x572",
      args: ["-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-x264-params", "tff=1", "-s", "720x572"],
      profile: 100,
      chroma: 1,
      depth: 8,
      frameMbsOnly: false,
      w: 720,
      h: 572,
    },
  ];
  for (const c of cases) {
    it(`matches ffprobe on x264 ${c.name}`, async () => {
      const file = join(tmp.dir, `${c.name.replace(/\W+/g, "_")}.h264`);
      await ffmpegFile(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-frames:v", "1", "-c:v", "libx264", ...c.args, file]);
      const sps = splitAnnexB(readFileSync(file)).find((n) => (n[0] & 0x1f) === 7);
      expect(sps).toBeDefined();
      const info = parseH264Sps(sps!);
      const probe = await ffprobe(file);
      expect(probe.streams[0]).toMatchObject({ width: c.w, height: c.h });
      expect(info).toMatchObject({
        profileIdc: c.profile,
        chromaFormatIdc: c.chroma,
        bitDepthLuma: c.depth,
        frameMbsOnly: c.frameMbsOnly,
        width: c.w,
        height: c.h,
      });
    });
  }
});
