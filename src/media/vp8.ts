import { VideoAssembler, type AssemblerOptions, type CodecFrame } from "./assembler.js";
import type { RtpView } from "./rtp.js";

/** The VP8 payload descriptor of RFC 7741 §4.2. */
export interface Vp8Descriptor {
  /** S: this packet starts a VP8 partition. */
  start: boolean;
  /** N: the frame is not used as a reference. */
  nonReference: boolean;
  /** Partition index. */
  pid: number;
  pictureId?: number;
  /** True when the PictureID was sent in its 15-bit form. */
  pictureId15?: boolean;
  tl0PicIdx?: number;
  tid?: number;
  layerSync?: boolean;
  keyIdx?: number;
  /** Bytes taken by the descriptor; the VP8 data follows. */
  size: number;
}

/** Parses the descriptor; undefined when the payload is too short for the bits it announces. */
export function parseVp8Descriptor(p: Uint8Array): Vp8Descriptor | undefined {
  if (p.length < 1) return undefined;
  const b0 = p[0];
  const d: Vp8Descriptor = {
    start: (b0 & 0x10) !== 0,
    nonReference: (b0 & 0x20) !== 0,
    pid: b0 & 0x07,
    size: 1,
  };
  if ((b0 & 0x80) === 0) return d;
  if (p.length < 2) return undefined;
  const x = p[1];
  let i = 2;
  if (x & 0x80) {
    if (i >= p.length) return undefined;
    if (p[i] & 0x80) {
      if (i + 1 >= p.length) return undefined;
      d.pictureId = ((p[i] & 0x7f) << 8) | p[i + 1];
      d.pictureId15 = true;
      i += 2;
    } else {
      d.pictureId = p[i];
      d.pictureId15 = false;
      i += 1;
    }
  }
  if (x & 0x40) {
    if (i >= p.length) return undefined;
    d.tl0PicIdx = p[i++];
  }
  // T and K share one byte: TID(2) Y(1) KEYIDX(5).
  if (x & 0x30) {
    if (i >= p.length) return undefined;
    if (x & 0x20) {
      d.tid = p[i] >> 6;
      d.layerSync = (p[i] & 0x20) !== 0;
    }
    if (x & 0x10) d.keyIdx = p[i] & 0x1f;
    i++;
  }
  d.size = i;
  return d;
}

/**
 * Bytes the descriptor takes, or -1 when the payload is too short for the fields it announces.
 * The allocation-free twin of `parseVp8Descriptor(p).size`.
 */
function vp8DescriptorSize(p: Uint8Array): number {
  if (p.length < 1) return -1;
  if ((p[0] & 0x80) === 0) return 1;
  if (p.length < 2) return -1;
  const x = p[1];
  let i = 2;
  if (x & 0x80) {
    if (i >= p.length) return -1;
    i += p[i] & 0x80 ? 2 : 1;
  }
  if (x & 0x40) i++;
  if (x & 0x30) i++;
  return i <= p.length ? i : -1;
}

/**
 * Whether this payload starts a keyframe: S=1 with partition 0 is the first packet of a frame,
 * and P=0 in the frame tag after the descriptor marks a keyframe (RFC 7741 §4.2-4.3). Runs per
 * forwarded packet: no allocation.
 */
export function vp8StartsKeyframe(p: Uint8Array): boolean {
  if (p.length === 0 || (p[0] & 0x10) === 0 || (p[0] & 0x07) !== 0) return false;
  const size = vp8DescriptorSize(p);
  return size >= 0 && size < p.length && (p[size] & 0x01) === 0;
}

/** Keyframe flag and, for a keyframe, the size from the VP8 frame header (RFC 6386 §9.1). */
export function parseVp8FrameHeader(frame: Uint8Array): { keyframe: boolean; width?: number; height?: number } | undefined {
  if (frame.length < 3) return undefined;
  // P (bit 0 of the frame tag) is 0 for a keyframe.
  if (frame[0] & 0x01) return { keyframe: false };
  if (frame.length < 10 || frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) {
    return undefined;
  }
  // 14-bit sizes; the top 2 bits are an upscaling hint the decoder output ignores.
  return {
    keyframe: true,
    width: (frame[6] | (frame[7] << 8)) & 0x3fff,
    height: (frame[8] | (frame[9] << 8)) & 0x3fff,
  };
}

/** Reassembles VP8 frames (RFC 7741) into the raw frames an IVF "VP80" file holds. */
export class Vp8Assembler extends VideoAssembler {
  private chunks: Uint8Array[] = [];

  constructor(options?: AssemblerOptions) {
    super(options);
  }

  protected beginFrame(): void {
    this.chunks = [];
  }

  protected addPacket(packet: RtpView, first: boolean): boolean {
    const d = parseVp8Descriptor(packet.payload);
    if (!d) return false;
    // Only the first packet of a frame may (and must) carry S=1 with partition 0.
    if (first !== (d.start && d.pid === 0)) return false;
    this.chunks.push(packet.payload.subarray(d.size));
    return true;
  }

  protected endFrame(): CodecFrame | undefined {
    const data = Buffer.concat(this.chunks);
    this.chunks = [];
    const h = parseVp8FrameHeader(data);
    if (!h) return undefined;
    return { data, ...h };
  }
}
