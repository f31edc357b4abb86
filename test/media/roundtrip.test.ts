import { afterAll, afterEach, describe, expect, it } from "vitest";
import { splitAnnexB, AnnexBWriter } from "../../src/media/annexb.js";
import { createAssembler, type Frame, type FrameAssembler } from "../../src/media/depacketize.js";
import { H264Assembler } from "../../src/media/h264.js";
import { IvfWriter, type IvfFourcc } from "../../src/media/ivf.js";
import { OggOpusWriter } from "../../src/media/ogg.js";
import { ReorderBuffer } from "../../src/media/reorder.js";
import { parseRtp, type RtpView } from "../../src/media/rtp.js";
import { captureRtp, decodeErrors, decodedSamples, ffprobe, killAll, makeTempDir, shuffleWithin, writeTemp } from "./helpers.js";

const tmp = makeTempDir();
afterEach(killAll);
afterAll(tmp.remove);

const CLIP = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2"];

interface Recorded {
  frames: Frame[];
  keyframeRequests: number;
  lost: number;
}

/** What a recorder does with a socket's datagrams: parse, reorder, reassemble. */
function assemble(datagrams: Buffer[], asm: FrameAssembler, startupPackets?: number): Recorded {
  const reorder = new ReorderBuffer<RtpView>(64, startupPackets);
  const frames: Frame[] = [];
  for (const d of datagrams) {
    const p = parseRtp(d);
    if (!p) continue;
    for (const item of reorder.push(p)) frames.push(...asm.feed(item));
  }
  for (const item of reorder.flush()) frames.push(...asm.feed(item));
  return { frames, keyframeRequests: 0, lost: reorder.stats.lost };
}

function writeIvf(fourcc: IvfFourcc, frames: Frame[]): Buffer {
  const first = frames[0];
  const w = new IvfWriter({ fourcc, width: first.width ?? 0, height: first.height ?? 0 });
  const parts = [w.fileHeader(), ...frames.map((f) => w.frame(f.data, f.timestamp))];
  const file = Buffer.concat(parts);
  w.finalHeader().copy(file, 0);
  return file;
}

describe("real FFmpeg RTP → reorder → assembler → file → ffprobe", () => {
  it("VP8 to IVF", async () => {
    const cap = await captureRtp([...CLIP, "-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-b:v", "500k"], tmp.dir);
    let requests = 0;
    const rec = assemble(cap.datagrams, createAssembler("VP8", { onKeyframeNeeded: () => requests++ }));
    expect(rec.lost).toBe(0);
    expect(requests).toBe(0);
    expect(rec.frames).toHaveLength(60);
    expect(rec.frames[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
    expect(rec.frames.filter((f) => f.keyframe)).toHaveLength(2);
    const file = writeTemp(tmp.dir, "vp8.ivf", writeIvf("VP80", rec.frames));
    const probe = await ffprobe(file, true);
    expect(probe.streams[0]).toMatchObject({ codec_name: "vp8", width: 320, height: 240, nb_read_frames: "60" });
    expect(Number(probe.format.duration)).toBeCloseTo(2.0, 1);
    expect(Math.abs(Number(probe.format.duration) - 2) / 2).toBeLessThan(0.05);
    expect(await decodeErrors(file)).toBe("");
  });

  it("VP8 shuffled in windows of 8 gives the same bytes as in-order delivery", async () => {
    const cap = await captureRtp([...CLIP, "-c:v", "libvpx", "-g", "30", "-deadline", "realtime"], tmp.dir);
    const inOrder = writeIvf("VP80", assemble(cap.datagrams, createAssembler("VP8")).frames);
    const shuffled = writeIvf("VP80", assemble(shuffleWithin(cap.datagrams, 8), createAssembler("VP8"), 8).frames);
    expect(shuffled.equals(inOrder)).toBe(true);
  });

  it("VP9 to IVF", async () => {
    const cap = await captureRtp(
      [...CLIP, "-c:v", "libvpx-vp9", "-g", "30", "-deadline", "realtime", "-lag-in-frames", "0", "-strict", "experimental"],
      tmp.dir,
    );
    const rec = assemble(cap.datagrams, createAssembler("VP9"));
    expect(rec.frames).toHaveLength(60);
    expect(rec.frames[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
    const file = writeTemp(tmp.dir, "vp9.ivf", writeIvf("VP90", rec.frames));
    const probe = await ffprobe(file, true);
    expect(probe.streams[0]).toMatchObject({ codec_name: "vp9", width: 320, height: 240, nb_read_frames: "60" });
    expect(Math.abs(Number(probe.format.duration) - 2) / 2).toBeLessThan(0.05);
    expect(await decodeErrors(file)).toBe("");
  });

  it("H.264 to Annex B", async () => {
    const cap = await captureRtp([...CLIP, "-c:v", "libx264", "-bf", "0", "-g", "30", "-preset", "veryfast", "-pix_fmt", "yuv420p"], tmp.dir);
    const rec = assemble(cap.datagrams, createAssembler("H264"));
    expect(rec.frames).toHaveLength(60);
    expect(rec.frames[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
    expect(rec.frames.filter((f) => f.keyframe)).toHaveLength(2);
    const w = new AnnexBWriter();
    const bytes = Buffer.concat([w.fileHeader(), ...rec.frames.map((f) => w.frame(f.data))]);
    expect(w.frameCount).toBe(60);
    const types = splitAnnexB(rec.frames[0].data).map((n) => n[0] & 0x1f);
    expect(types).toContain(7);
    expect(types).toContain(8);
    expect(types).toContain(5);
    const file = writeTemp(tmp.dir, "h264.h264", bytes);
    const probe = await ffprobe(file, true);
    expect(probe.streams[0]).toMatchObject({ codec_name: "h264", width: 320, height: 240, nb_read_frames: "60" });
    // A raw stream has no timestamps: 60 frames at the SPS's 30 fps is the 2 s clip.
    expect(await decodeErrors(file)).toBe("");
  });

  it("H.264 keyframe without in-band SPS/PPS gets them from sprop-parameter-sets", async () => {
    // With a global header x264 puts SPS/PPS only into the SDP, never in-band.
    const cap = await captureRtp(
      [...CLIP, "-c:v", "libx264", "-bf", "0", "-g", "30", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-flags", "+global_header"],
      tmp.dir,
    );
    const sprop = /sprop-parameter-sets=([^;\s]+)/.exec(cap.sdp)?.[1];
    expect(sprop).toBeTruthy();
    const stripped = cap.datagrams;
    const inBand = assemble(stripped, new H264Assembler({ spropParameterSets: sprop }))
      .frames.flatMap((f) => splitAnnexB(f.data))
      .filter((n) => (n[0] & 0x1f) === 7);
    expect(inBand).toHaveLength(2); // one per IDR, all from sprop
    const withoutSprop = assemble(stripped, new H264Assembler());
    expect(withoutSprop.frames).toHaveLength(0);
    const rec = assemble(stripped, new H264Assembler({ spropParameterSets: sprop }));
    expect(rec.frames).toHaveLength(60);
    expect(rec.frames[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
    const file = writeTemp(tmp.dir, "sprop.h264", Buffer.concat(rec.frames.map((f) => f.data)));
    const probe = await ffprobe(file, true);
    expect(probe.streams[0]).toMatchObject({ codec_name: "h264", width: 320, height: 240, nb_read_frames: "60" });
    expect(await decodeErrors(file)).toBe("");
  });

  /**
   * Drops one packet from the middle of frame 10 (not its first one) and checks that frames
   * 10..29 are dropped, a keyframe is asked for, and the file still decodes cleanly.
   */
  async function lossCase(codec: "VP8" | "H264", encoder: string[]): Promise<void> {
    // Small packets so that every frame spans several.
    const cap = await captureRtp([...CLIP, ...encoder], tmp.dir, 200);
    const packets = cap.datagrams.map((d) => parseRtp(d)!);
    const stamps = [...new Set(packets.map((p) => p.timestamp))];
    const inFrame10 = packets.map((p, i) => ({ p, i })).filter(({ p }) => p.timestamp === stamps[10]);
    expect(inFrame10.length).toBeGreaterThan(1);
    const drop = inFrame10[1].i;
    if (codec === "H264") expect(packets[drop].payload[0] & 0x1f).toBe(28); // an FU-A fragment
    let requests = 0;
    const rec = assemble(
      cap.datagrams.filter((_, i) => i !== drop),
      createAssembler(codec, { onKeyframeNeeded: () => requests++ }),
    );
    expect(rec.lost).toBe(1);
    expect(requests).toBe(1);
    expect(rec.frames.map((f) => stamps.indexOf(f.timestamp))).toEqual([
      ...Array.from({ length: 10 }, (_, k) => k),
      ...Array.from({ length: 30 }, (_, k) => k + 30),
    ]);
    const data = codec === "VP8" ? writeIvf("VP80", rec.frames) : Buffer.concat(rec.frames.map((f) => f.data));
    const file = writeTemp(tmp.dir, `loss.${codec}`, data);
    const probe = await ffprobe(file, true);
    expect(probe.streams[0].nb_read_frames).toBe("40");
    expect(await decodeErrors(file)).toBe("");
  }

  it("VP8 with a packet lost inside frame 10: frames 10-29 dropped, one keyframe request", async () => {
    await lossCase("VP8", ["-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-b:v", "1M"]);
  });

  it("H.264 with an FU-A fragment lost inside frame 10: frames 10-29 dropped", async () => {
    await lossCase("H264", ["-c:v", "libx264", "-bf", "0", "-g", "30", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-b:v", "1M"]);
  });

  const SINE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-ac", "2", "-c:a", "libopus", "-b:a", "64k"];

  function writeOgg(frames: Frame[]): Buffer {
    const w = new OggOpusWriter({ serial: 0x1234abcd, channels: 2 });
    return Buffer.concat([w.begin(), ...frames.map((f) => w.packet(f.data, f.timestamp)), w.end()]);
  }

  it("Opus to Ogg", async () => {
    const cap = await captureRtp(SINE, tmp.dir);
    const rec = assemble(cap.datagrams, createAssembler("opus"));
    // libopus pads the 2 s clip to whole 20 ms packets.
    expect(rec.frames.length).toBeGreaterThanOrEqual(100);
    const real = (rec.frames.length * 960) / 48000;
    const file = writeTemp(tmp.dir, "opus.ogg", writeOgg(rec.frames));
    const probe = await ffprobe(file, true);
    expect(probe.streams[0]).toMatchObject({ codec_name: "opus", channels: 2, sample_rate: "48000" });
    // 4 zero-length concealment packets carry the 3840 pre-skip samples, then every RTP packet.
    expect(Number(probe.streams[0].nb_read_packets)).toBe(rec.frames.length + 4);
    expect(Number(probe.streams[0].nb_read_frames)).toBe(rec.frames.length);
    // FFmpeg's Ogg demuxer reports last granule / 48000, pre-skip included (it does the same for
    // files from its own muxer), so its duration is the real one plus 80 ms.
    expect(Number(probe.format.duration)).toBeCloseTo(real + 0.08, 3);
    expect(Math.abs(Number(probe.format.duration) - real) / real).toBeLessThan(0.05);
    // What a player really gets: exactly the RTP audio, pre-skip discarded.
    expect(await decodedSamples(file, 2)).toBe(rec.frames.length * 960);
    expect(await decodeErrors(file)).toBe("");
  });

  it("Opus with 5 packets lost keeps its timeline through concealment frames", async () => {
    const cap = await captureRtp(SINE, tmp.dir);
    const lossy = cap.datagrams.filter((_, i) => i < 40 || i >= 45);
    const rec = assemble(lossy, createAssembler("opus"));
    expect(rec.lost).toBe(5);
    const total = rec.frames.length + 5;
    const file = writeTemp(tmp.dir, "lossy.ogg", writeOgg(rec.frames));
    expect(await decodedSamples(file, 2)).toBe(total * 960);
    const probe = await ffprobe(file);
    expect(Number(probe.format.duration)).toBeCloseTo((total * 960) / 48000 + 0.08, 3);
    expect(await decodeErrors(file)).toBe("");
  });
});
