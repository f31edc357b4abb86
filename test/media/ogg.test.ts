import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { concealmentPackets, lacingValues, OGG_BOS, OGG_CONTINUED, OGG_EOS, oggCrc32, OggOpusWriter, OggStream } from "../../src/media/ogg.js";
import { opusPacketSamples } from "../../src/media/opus.js";
import { decodedSamples, decodeErrors, ffmpegFile, ffprobe, makeTempDir, writeTemp } from "./helpers.js";

const tmp = makeTempDir();
afterAll(tmp.remove);

interface Page {
  flags: number;
  granule: bigint;
  serial: number;
  sequence: number;
  crc: number;
  lacing: number[];
  body: Buffer;
  raw: Buffer;
}

function parsePages(buf: Buffer): Page[] {
  const pages: Page[] = [];
  for (let o = 0; o < buf.length; ) {
    expect(buf.toString("latin1", o, o + 4)).toBe("OggS");
    const n = buf[o + 26];
    const lacing = [...buf.subarray(o + 27, o + 27 + n)];
    const bodyLen = lacing.reduce((a, b) => a + b, 0);
    const end = o + 27 + n + bodyLen;
    pages.push({
      flags: buf[o + 5],
      granule: buf.readBigInt64LE(o + 6),
      serial: buf.readUInt32LE(o + 14),
      sequence: buf.readUInt32LE(o + 18),
      crc: buf.readUInt32LE(o + 22),
      lacing,
      body: buf.subarray(o + 27 + n, end),
      raw: buf.subarray(o, end),
    });
    o = end;
  }
  return pages;
}

function crcOk(p: Page): boolean {
  const copy = Buffer.from(p.raw);
  copy.writeUInt32LE(0, 22);
  return oggCrc32(copy) === p.crc;
}

/** A 20 ms CELT fullband stereo Opus packet of `n` bytes (TOC config 31, code 0). */
const opus20 = (n: number): Buffer => Buffer.concat([Buffer.from([0xfc]), Buffer.alloc(n - 1, 0x55)]);

describe("oggCrc32", () => {
  it("has Ogg's check value (poly 0x04c11db7, init 0, no reflection, no final xor)", () => {
    expect(oggCrc32(Buffer.from("123456789"))).toBe(0x89a1897f);
    expect(oggCrc32(Buffer.alloc(0))).toBe(0);
  });

  it("matches every page checksum in a file from FFmpeg's own Ogg muxer", async () => {
    const file = join(tmp.dir, "ref.opus");
    await ffmpegFile(["-f", "lavfi", "-i", "sine=frequency=300", "-t", "1.5", "-c:a", "libopus", file]);
    const pages = parsePages(readFileSync(file));
    expect(pages.length).toBeGreaterThan(2);
    for (const p of pages) expect(crcOk(p)).toBe(true);
  });
});

describe("lacingValues", () => {
  it("ends every packet with a value below 255, even a 0 for exact multiples", () => {
    expect(lacingValues(0)).toEqual([0]);
    expect(lacingValues(1)).toEqual([1]);
    expect(lacingValues(254)).toEqual([254]);
    expect(lacingValues(255)).toEqual([255, 0]);
    expect(lacingValues(256)).toEqual([255, 1]);
    expect(lacingValues(510)).toEqual([255, 255, 0]);
    expect(lacingValues(255 * 255)).toHaveLength(256);
    expect(lacingValues(255 * 255).at(-1)).toBe(0);
  });
});

describe("OggStream.pages", () => {
  it("splits a 255*255-byte packet: 255 segments of 255, then a continued page with the final 0", () => {
    const s = new OggStream(7);
    const data = Buffer.alloc(255 * 255, 0xab);
    const pages = parsePages(s.pages([{ data, granule: 960n }]));
    expect(pages).toHaveLength(2);
    expect(pages[0]).toMatchObject({ flags: 0, granule: -1n, sequence: 0, serial: 7 });
    expect(pages[0].lacing).toEqual(new Array(255).fill(255));
    expect(pages[1]).toMatchObject({ flags: OGG_CONTINUED, granule: 960n, sequence: 1, lacing: [0] });
    expect(pages[1].body.length).toBe(0);
    expect(Buffer.concat([pages[0].body, pages[1].body]).equals(data)).toBe(true);
    expect(pages.every(crcOk)).toBe(true);
  });

  it("starts a fresh (not continued) page when a packet ends exactly at 255 segments", () => {
    const s = new OggStream(1);
    // 254*255 + 254 bytes = 255 lacing values, the last one 254.
    const a = Buffer.alloc(254 * 255 + 254, 1);
    const b = Buffer.from([9, 9]);
    const pages = parsePages(
      s.pages(
        [
          { data: a, granule: 10n },
          { data: b, granule: 20n },
        ],
        OGG_BOS | OGG_EOS,
      ),
    );
    expect(pages.map((p) => [p.flags, p.granule, p.lacing.length])).toEqual([
      [OGG_BOS, 10n, 255],
      [OGG_EOS, 20n, 1],
    ]);
  });

  it("lays out a packet of 300 000 bytes over 5 pages, granule only where it ends", () => {
    const s = new OggStream(1);
    const pages = parsePages(s.pages([{ data: Buffer.alloc(300_000), granule: 5n }], OGG_EOS));
    expect(pages.map((p) => p.flags)).toEqual([0, 1, 1, 1, 1 | OGG_EOS]);
    expect(pages.map((p) => p.granule)).toEqual([-1n, -1n, -1n, -1n, 5n]);
    expect(pages.reduce((n, p) => n + p.body.length, 0)).toBe(300_000);
    expect(s.pageCount).toBe(5);
  });
});

describe("opusPacketSamples", () => {
  it("reads frame size and count from the TOC", () => {
    expect(opusPacketSamples(Uint8Array.of(0xfc))).toBe(960); // CELT FB 20 ms, code 0
    expect(opusPacketSamples(Uint8Array.of(0x78, 0))).toBe(960); // hybrid FB 20 ms
    expect(opusPacketSamples(Uint8Array.of(0x18))).toBe(2880); // SILK NB 60 ms
    expect(opusPacketSamples(Uint8Array.of(0x81))).toBe(240); // CELT NB 2.5 ms, code 1: 2 frames
    expect(opusPacketSamples(Uint8Array.of(0x02, 0x00))).toBe(960); // SILK NB 10 ms, code 2: 2 frames
    expect(opusPacketSamples(Uint8Array.of(0xfb, 0x03))).toBe(2880); // code 3, 3 frames of 20 ms
    expect(opusPacketSamples(Uint8Array.of(0xfb))).toBeUndefined();
    expect(opusPacketSamples(Uint8Array.of())).toBeUndefined();
  });
});

describe("concealmentPackets", () => {
  it("covers a gap with zero-length frames, largest first, down to 2.5 ms", () => {
    const gap = 5760 + 960 + 480 + 240 + 120 + 50;
    expect(concealmentPackets(gap, 2).map((b) => b.toString("hex"))).toEqual(["ff06", "fc", "f4", "ec", "e4"]);
    expect(concealmentPackets(960, 1).map((b) => b.toString("hex"))).toEqual(["f8"]);
    const total = concealmentPackets(48000 * 3 + 7, 2).reduce((n, p) => n + (opusPacketSamples(p) ?? 0), 0);
    expect(total).toBe(48000 * 3);
  });
});

describe("OggOpusWriter", () => {
  it("writes the exact OpusHead BOS page and an OpusTags page", () => {
    const w = new OggOpusWriter({ serial: 0x01020304, channels: 2, vendor: "v", comments: ["A=b"] });
    const bytes = w.begin();
    expect(bytes.subarray(0, 47).toString("hex")).toBe(
      "4f676753" + "00" + "02" + "0000000000000000" + "04030201" + "00000000" + "e8bb59c1" + "01" + "13" + "4f707573486561640102000f80bb0000000000",
    );
    const [head, tags] = parsePages(bytes);
    expect(head.crc).toBe(0xc159bbe8); // computed independently of src/media
    expect(tags).toMatchObject({ flags: 0, granule: 0n, sequence: 1 });
    expect(tags.body.toString("hex")).toBe("4f70757354616773" + "01000000" + "76" + "01000000" + "03000000" + "413d62");
    expect(crcOk(tags)).toBe(true);
  });

  it("fills the pre-skip, pages about every second, and sets EOS on the last page only", () => {
    const w = new OggOpusWriter({ serial: 9 });
    const out = [w.begin()];
    for (let i = 0; i < 120; i++) out.push(w.packet(opus20(40), 1000 + i * 960));
    out.push(w.end());
    const pages = parsePages(Buffer.concat(out));
    expect(pages.map((p) => p.sequence)).toEqual(pages.map((_, i) => i));
    expect(pages.every(crcOk)).toBe(true);
    expect(pages.map((p) => p.flags)).toEqual([OGG_BOS, 0, 0, 0, OGG_EOS]);
    // 4 concealment packets (3840 samples) then 120 real ones: 124 packets, pages of >= 48000.
    expect(pages.slice(2).map((p) => p.lacing.length)).toEqual([50, 50, 24]);
    expect(pages.slice(2).map((p) => p.granule)).toEqual([48000n, 96000n, 119040n]);
    expect(pages[2].body.subarray(0, 4).toString("hex")).toBe("fcfcfcfc");
    expect(w.packetCount).toBe(124);
    expect(w.samples).toBe(120 * 960);
  });

  it("derives granules from RTP timestamps across the 2^32 wrap", () => {
    const w = new OggOpusWriter({ serial: 1, preSkip: 0, pageSamples: 1 });
    w.begin();
    // 0xfffffc40 + 960 wraps to 0.
    const ts = [0xfffff880, 0xfffffc40, 0x00000000, 0x000003c0];
    const pages = parsePages(Buffer.concat([...ts.map((t) => w.packet(opus20(10), t)), w.end()]));
    expect(pages.map((p) => p.granule)).toEqual([960n, 1920n, 2880n, 3840n]);
  });

  it("fills a timestamp gap with concealment so the sample count matches the granule", () => {
    const w = new OggOpusWriter({ serial: 1, preSkip: 0, pageSamples: 1 });
    w.begin();
    const a = w.packet(opus20(10), 0);
    const b = w.packet(opus20(10), 960 + 7 * 960); // 7 packets (140 ms) missing
    const pages = parsePages(Buffer.concat([a, b, w.end()]));
    // pageSamples 1 puts each packet on its own page: real, 120 ms + 20 ms concealment, real.
    expect(pages.map((p) => [p.granule, p.body.toString("hex").slice(0, 6)])).toEqual([
      [960n, "fc5555"],
      [960n + 5760n, "ff06"],
      [960n * 8n, "fc"],
      [960n * 9n, "fc5555"],
    ]);
  });

  it("closes up a jump larger than maxGapSamples and a step backwards", () => {
    const w = new OggOpusWriter({ serial: 1, preSkip: 0, pageSamples: 1, maxGapSamples: 48000 });
    w.begin();
    const bytes = Buffer.concat([w.packet(opus20(10), 0), w.packet(opus20(10), 960 + 48001), w.packet(opus20(10), 500), w.end()]);
    expect(parsePages(bytes).map((p) => p.granule)).toEqual([960n, 1920n, 2880n]);
  });

  it("rounds the pre-skip to 2.5 ms and writes that into OpusHead", () => {
    const w = new OggOpusWriter({ serial: 1, channels: 1, preSkip: 312 });
    const [head] = parsePages(w.begin());
    expect(head.body.readUInt16LE(10)).toBe(240);
    expect(head.body[9]).toBe(1);
    expect(() => new OggOpusWriter({ serial: 1, preSkip: 70000 })).toThrow(RangeError);
  });

  it("makes a file FFmpeg decodes: mono, 1 s of real Opus re-timed through a wrap", async () => {
    const src = join(tmp.dir, "mono.opus");
    await ffmpegFile(["-f", "lavfi", "-i", "sine=frequency=500:sample_rate=48000", "-t", "1", "-ac", "1", "-c:a", "libopus", src]);
    // Take the packets out of FFmpeg's file: page bodies cut by lacing.
    const packets: Buffer[] = [];
    let partial: Buffer[] = [];
    for (const p of parsePages(readFileSync(src)).slice(2)) {
      let o = 0;
      for (const v of p.lacing) {
        partial.push(p.body.subarray(o, o + v));
        o += v;
        if (v < 255) {
          packets.push(Buffer.concat(partial));
          partial = [];
        }
      }
    }
    expect(packets.length).toBeGreaterThanOrEqual(50);
    const w = new OggOpusWriter({ serial: 42, channels: 1 });
    let ts = 0xffffffff - 960 * 10;
    const parts = [w.begin()];
    for (const p of packets) {
      parts.push(w.packet(p, ts >>> 0));
      ts += opusPacketSamples(p) ?? 0;
    }
    parts.push(w.end());
    const file = writeTemp(tmp.dir, "mono.ogg", Buffer.concat(parts));
    const probe = await ffprobe(file, true);
    expect(probe.streams[0]).toMatchObject({ codec_name: "opus", channels: 1 });
    const samples = packets.reduce((n, p) => n + (opusPacketSamples(p) ?? 0), 0);
    expect(await decodedSamples(file, 1)).toBe(samples);
    expect(await decodeErrors(file)).toBe("");
  });
});
