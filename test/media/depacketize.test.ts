import { describe, expect, it } from "vitest";
import { Av1Assembler, createAssembler, H264Assembler, OpusAssembler, Vp8Assembler, Vp9Assembler } from "../../src/media/depacketize.js";
import { rtp } from "./helpers.js";

describe("createAssembler", () => {
  it("makes the assembler for each codec", () => {
    expect(createAssembler("VP8")).toBeInstanceOf(Vp8Assembler);
    expect(createAssembler("VP9")).toBeInstanceOf(Vp9Assembler);
    expect(createAssembler("H264", { spropParameterSets: "Z0IAH5WoFAFuQA==,aM48gA==" })).toBeInstanceOf(H264Assembler);
    expect(createAssembler("opus")).toBeInstanceOf(OpusAssembler);
    expect(createAssembler("AV1")).toBeInstanceOf(Av1Assembler);
  });
});

describe("OpusAssembler", () => {
  it("emits every packet as a keyframe, copies it, ignores losses and empty payloads", () => {
    const asm = new OpusAssembler();
    const payload = Uint8Array.of(0xfc, 1, 2);
    const [f] = asm.push(rtp(1, 960, false, payload));
    expect(f).toEqual({ data: Buffer.from([0xfc, 1, 2]), timestamp: 960, keyframe: true });
    payload[1] = 9;
    expect(f.data[1]).toBe(1);
    expect(asm.feed({ type: "lost", count: 3 })).toEqual([]);
    expect(asm.push(rtp(5, 4800, false, []))).toEqual([]);
    expect(asm.waitingForKeyframe).toBe(false);
    expect(asm.flush()).toEqual([]);
  });
});
