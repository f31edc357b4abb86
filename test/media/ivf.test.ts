import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { IvfWriter } from "../../src/media/ivf.js";
import { decodeErrors, ffmpegFile, ffprobe, makeTempDir, writeTemp } from "./helpers.js";

const tmp = makeTempDir();
afterAll(tmp.remove);

describe("IvfWriter", () => {
  it("writes the exact 32-byte header", () => {
    const w = new IvfWriter({ fourcc: "VP80", width: 320, height: 240 });
    expect(w.fileHeader().toString("hex")).toBe(
      "444b4946" + "0000" + "2000" + "56503830" + "4001" + "f000" + "905f0100" + "01000000" + "00000000" + "00000000",
    );
    expect(new IvfWriter({ fourcc: "AV01", width: 1920, height: 1080 }).fileHeader().subarray(8, 16).toString("hex")).toBe("41563031" + "8007" + "3804");
  });

  it("writes 12-byte frame headers with the size and PTS in RTP ticks from the first frame", () => {
    const w = new IvfWriter({ fourcc: "VP90", width: 2, height: 2 });
    expect(w.frame(Uint8Array.of(1, 2, 3), 1000).toString("hex")).toBe("03000000" + "0000000000000000" + "010203");
    expect(w.frame(Uint8Array.of(4), 4000).toString("hex")).toBe("01000000" + "b80b000000000000" + "04");
  });

  it("unwraps the 32-bit RTP timestamp into a 64-bit PTS", () => {
    const w = new IvfWriter({ fourcc: "VP80", width: 2, height: 2 });
    w.frame(Uint8Array.of(0), 0xfffff000);
    const f = w.frame(Uint8Array.of(0), 0x00000bb8);
    expect(f.readBigInt64LE(4)).toBe(0x1000n + 0xbb8n);
    // Two more wraps later (about 26.5 h at 90 kHz) the PTS is beyond 32 bits.
    for (let k = 1; k <= 8; k++) w.frame(Uint8Array.of(0), (0xbb8 + k * 0x40000000) >>> 0);
    const last = w.frame(Uint8Array.of(0), 0xbb8);
    expect(last.readBigInt64LE(4)).toBe(0x1000n + 0xbb8n + 2n * 2n ** 32n);
  });

  it("stores the duration (span + one frame interval) in the final header; keeps the frame count", () => {
    const w = new IvfWriter({ fourcc: "VP80", width: 320, height: 240 });
    for (let i = 0; i < 3; i++) w.frame(Uint8Array.of(i), 5000 + i * 3000);
    expect(w.frameCount).toBe(3);
    expect(w.duration).toBe(9000);
    const h = w.finalHeader();
    expect(h.readUInt32LE(24)).toBe(9000);
    expect(h.subarray(0, 24)).toEqual(w.fileHeader().subarray(0, 24));
    expect(new IvfWriter({ fourcc: "VP80", width: 1, height: 1 }).finalHeader().readUInt32LE(24)).toBe(0);
  });

  describe("what FFmpeg makes of the length field (1/90000 timebase, 60 frames over 2 s)", () => {
    const frames: Buffer[] = [];

    async function vp8Frames(): Promise<Buffer[]> {
      if (frames.length) return frames;
      const src = join(tmp.dir, "src.ivf");
      await ffmpegFile(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2", "-c:v", "libvpx", "-g", "30", src]);
      const bytes = readFileSync(src);
      for (let o = 32; o < bytes.length; ) {
        const size = bytes.readUInt32LE(o);
        frames.push(bytes.subarray(o + 12, o + 12 + size));
        o += 12 + size;
      }
      return frames;
    }

    /** 60 frames at 3000 ticks, starting just before the RTP timestamp wraps. */
    async function file(name: string, length: ((w: IvfWriter) => number) | "final" | "crash"): Promise<string> {
      const w = new IvfWriter({ fourcc: "VP80", width: 320, height: 240 });
      const body = (await vp8Frames()).map((f, i) => w.frame(f, (0xffff0000 + i * 3000) >>> 0));
      const header = length === "final" ? w.finalHeader() : w.fileHeader();
      if (typeof length === "function") header.writeUInt32LE(length(w), 24);
      return writeTemp(tmp.dir, `${name}.ivf`, Buffer.concat([header, ...body]));
    }

    it("the duration in timebase units: ffprobe reports 2 s (what finalHeader writes)", async () => {
      const probe = await ffprobe(await file("final", "final"), true);
      expect(probe.streams[0]).toMatchObject({ codec_name: "vp8", width: 320, height: 240, nb_read_frames: "60" });
      expect(Number(probe.format.duration)).toBe(2);
      expect(await decodeErrors(join(tmp.dir, "final.ivf"))).toBe("");
    });

    it("the frame count: ffprobe reports 60/90000 s, which is why it is not stored there", async () => {
      const probe = await ffprobe(await file("count", (w) => w.frameCount));
      expect(Number(probe.format.duration)).toBeCloseTo(60 / 90000, 6);
    });

    it("0, as left by a crash: the file still plays, with no format duration", async () => {
      const path = await file("crash", "crash");
      const probe = await ffprobe(path, true);
      expect(probe.format.duration).toBeUndefined();
      expect(probe.streams[0].nb_read_frames).toBe("60");
      expect(await decodeErrors(path)).toBe("");
    });
  });
});
