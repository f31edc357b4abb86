import type { AssemblerOptions, FrameAssembler } from "./assembler.js";
import { Av1Assembler } from "./av1.js";
import type { CodecName } from "./codecs.js";
import { H264Assembler, type H264AssemblerOptions } from "./h264.js";
import { OpusAssembler } from "./opus.js";
import { Vp8Assembler } from "./vp8.js";
import { Vp9Assembler } from "./vp9.js";

export type { AssemblerOptions, CodecFrame, Frame, FrameAssembler } from "./assembler.js";
export { VideoAssembler } from "./assembler.js";
export { Av1Assembler } from "./av1.js";
export { H264Assembler, type H264AssemblerOptions } from "./h264.js";
export { OpusAssembler } from "./opus.js";
export { Vp8Assembler } from "./vp8.js";
export { Vp9Assembler } from "./vp9.js";

/** One assembler per received stream; `spropParameterSets` is used by H.264 only. */
export function createAssembler(codec: CodecName, options: AssemblerOptions & H264AssemblerOptions = {}): FrameAssembler {
  switch (codec) {
    case "VP8":
      return new Vp8Assembler(options);
    case "VP9":
      return new Vp9Assembler(options);
    case "H264":
      return new H264Assembler(options);
    case "opus":
      return new OpusAssembler(options);
    case "AV1":
      return new Av1Assembler(options);
  }
}
