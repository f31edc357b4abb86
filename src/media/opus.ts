import type { AssemblerOptions, Frame, FrameAssembler } from "./assembler.js";
import type { ReorderItem } from "./reorder.js";
import type { RtpView } from "./rtp.js";

/** Samples at 48 kHz of one frame for each of the 32 TOC configurations (RFC 6716 §3.1). */
const FRAME_SAMPLES = [
  480,
  960,
  1920,
  2880,
  480,
  960,
  1920,
  2880,
  480,
  960,
  1920,
  2880, // SILK NB, MB, WB
  480,
  960,
  480,
  960, // hybrid SWB, FB
  120,
  240,
  480,
  960,
  120,
  240,
  480,
  960,
  120,
  240,
  480,
  960,
  120,
  240,
  480,
  960, // CELT
];

/**
 * Duration of an Opus packet in 48 kHz samples, from its TOC byte and frame count
 * (RFC 6716 §3.1–3.2). Undefined for an empty or truncated packet.
 */
export function opusPacketSamples(packet: Uint8Array): number | undefined {
  if (packet.length < 1) return undefined;
  const perFrame = FRAME_SAMPLES[packet[0] >> 3];
  switch (packet[0] & 0x03) {
    case 0:
      return perFrame;
    case 1:
    case 2:
      return 2 * perFrame;
    default:
      if (packet.length < 2) return undefined;
      return (packet[1] & 0x3f) * perFrame;
  }
}

/**
 * Opus needs no reassembly: every RTP payload is one Opus packet (RFC 7587), and every packet is
 * a valid starting point, so each is a "keyframe" and a loss costs only that packet.
 */
export class OpusAssembler implements FrameAssembler {
  readonly waitingForKeyframe = false;

  // Options are accepted for a uniform factory; Opus never needs a keyframe.
  // biome-ignore lint/complexity/noUselessConstructor: keeps the factory's (options) signature
  constructor(_options?: AssemblerOptions) {}

  push(packet: RtpView): Frame[] {
    if (packet.payload.length === 0) return [];
    return [{ data: Buffer.from(packet.payload), timestamp: packet.timestamp, keyframe: true }];
  }

  lost(_count: number): void {}

  feed(item: ReorderItem<RtpView>): Frame[] {
    return item.type === "packet" ? this.push(item.packet) : [];
  }

  flush(): Frame[] {
    return [];
  }
}
