import type { AssemblerOptions, FrameAssembler } from "./assembler.js";
import { H264Assembler, type H264AssemblerOptions } from "./h264.js";
import { OpusAssembler } from "./opus.js";
import { Vp8Assembler } from "./vp8.js";
import { Vp9Assembler } from "./vp9.js";

export type { AssemblerOptions, CodecFrame, Frame, FrameAssembler } from "./assembler.js";
export { VideoAssembler } from "./assembler.js";
export { H264Assembler, type H264AssemblerOptions } from "./h264.js";
export { OpusAssembler } from "./opus.js";
export { Vp8Assembler } from "./vp8.js";
export { Vp9Assembler } from "./vp9.js";

export type RecordableCodec = "VP8" | "VP9" | "H264" | "opus";

/** Maps an SDP codec name or MIME type ("video/VP8", "H264", "opus") to a recordable codec. */
export function recordableCodec(name: string): RecordableCodec | undefined {
  const n = name.replace(/^(audio|video)\//i, "").toUpperCase();
  if (n === "VP8" || n === "VP9" || n === "H264") return n;
  if (n === "OPUS") return "opus";
  return undefined;
}

/** One assembler per received stream; `spropParameterSets` is used by H.264 only. */
export function createAssembler(
  codec: RecordableCodec,
  options: AssemblerOptions & H264AssemblerOptions = {},
): FrameAssembler {
  switch (codec) {
    case "VP8":
      return new Vp8Assembler(options);
    case "VP9":
      return new Vp9Assembler(options);
    case "H264":
      return new H264Assembler(options);
    case "opus":
      return new OpusAssembler(options);
  }
}
