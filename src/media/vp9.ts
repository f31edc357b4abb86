import { VideoAssembler, type AssemblerOptions, type CodecFrame } from "./assembler.js";
import { BitReader, BitstreamError } from "./bits.js";
import type { RtpView } from "./rtp.js";

/** Scalability structure (RFC 9628 §4.2.1). */
export interface Vp9ScalabilityStructure {
  spatialLayers: number;
  /** Per spatial layer, lowest first; empty when Y=0. */
  resolutions: { width: number; height: number }[];
  /** Picture group: one entry per picture with its temporal id, switching flag and P_DIFFs. */
  pictureGroup: { tid: number; switchingUp: boolean; pDiffs: number[] }[];
}

/** The VP9 payload descriptor of RFC 9628 §4.2. */
export interface Vp9Descriptor {
  /** P: inter-picture predicted. */
  interPicture: boolean;
  /** F: flexible mode. */
  flexible: boolean;
  /** B: first packet of a layer frame. */
  beginning: boolean;
  /** E: last packet of a layer frame. */
  end: boolean;
  /** Z: not used for inter-layer prediction of higher spatial layers. */
  notRefForUpperLayer: boolean;
  pictureId?: number;
  tid?: number;
  switchingUp?: boolean;
  sid?: number;
  /** D: inter-layer dependency. */
  interLayer?: boolean;
  tl0PicIdx?: number;
  pDiffs: number[];
  ss?: Vp9ScalabilityStructure;
  /** Bytes taken by the descriptor; the VP9 data follows. */
  size: number;
}

export function parseVp9Descriptor(p: Uint8Array): Vp9Descriptor | undefined {
  let i = 0;
  const need = (n: number): boolean => i + n <= p.length;
  if (!need(1)) return undefined;
  const b0 = p[i++];
  const d: Vp9Descriptor = {
    interPicture: (b0 & 0x40) !== 0,
    flexible: (b0 & 0x10) !== 0,
    beginning: (b0 & 0x08) !== 0,
    end: (b0 & 0x04) !== 0,
    notRefForUpperLayer: (b0 & 0x01) !== 0,
    pDiffs: [],
    size: 0,
  };
  const hasPictureId = (b0 & 0x80) !== 0;
  const hasLayers = (b0 & 0x20) !== 0;
  const hasSs = (b0 & 0x02) !== 0;
  if (hasPictureId) {
    if (!need(1)) return undefined;
    if (p[i] & 0x80) {
      if (!need(2)) return undefined;
      d.pictureId = ((p[i] & 0x7f) << 8) | p[i + 1];
      i += 2;
    } else {
      d.pictureId = p[i++];
    }
  }
  if (hasLayers) {
    if (!need(1)) return undefined;
    const l = p[i++];
    d.tid = l >> 5;
    d.switchingUp = (l & 0x10) !== 0;
    d.sid = (l >> 1) & 0x07;
    d.interLayer = (l & 0x01) !== 0;
    // Non-flexible mode carries TL0PICIDX after the layer byte.
    if (!d.flexible) {
      if (!need(1)) return undefined;
      d.tl0PicIdx = p[i++];
    }
  }
  if (d.flexible && d.interPicture) {
    // Up to 3 reference P_DIFFs, each with N=1 when another follows.
    for (;;) {
      if (!need(1) || d.pDiffs.length === 3) return undefined;
      const b = p[i++];
      d.pDiffs.push(b >> 1);
      if ((b & 0x01) === 0) break;
    }
  }
  if (hasSs) {
    if (!need(1)) return undefined;
    const v = p[i++];
    const ss: Vp9ScalabilityStructure = {
      spatialLayers: (v >> 5) + 1,
      resolutions: [],
      pictureGroup: [],
    };
    if (v & 0x10) {
      for (let s = 0; s < ss.spatialLayers; s++) {
        if (!need(4)) return undefined;
        ss.resolutions.push({ width: (p[i] << 8) | p[i + 1], height: (p[i + 2] << 8) | p[i + 3] });
        i += 4;
      }
    }
    if (v & 0x08) {
      if (!need(1)) return undefined;
      const ng = p[i++];
      for (let g = 0; g < ng; g++) {
        if (!need(1)) return undefined;
        const b = p[i++];
        const r = (b >> 2) & 0x03;
        if (!need(r)) return undefined;
        const pDiffs = Array.from(p.subarray(i, i + r));
        i += r;
        ss.pictureGroup.push({ tid: b >> 5, switchingUp: (b & 0x10) !== 0, pDiffs });
      }
    }
    d.ss = ss;
  }
  d.size = i;
  return d;
}

/**
 * Whether this payload starts a keyframe: B (start of a layer frame) set and P (inter-picture
 * predicted) clear (RFC 9628 §4.2). Runs per forwarded packet: no allocation.
 */
export function vp9StartsKeyframe(p: Uint8Array): boolean {
  return p.length > 0 && (p[0] & 0x08) !== 0 && (p[0] & 0x40) === 0;
}

export interface Vp9FrameHeader {
  profile: number;
  showExistingFrame: boolean;
  keyframe: boolean;
  width?: number;
  height?: number;
}

/**
 * Reads the start of the VP9 uncompressed header (VP9 bitstream spec §6.2) far enough to know
 * the frame type and, for a keyframe, its size.
 */
export function parseVp9FrameHeader(frame: Uint8Array): Vp9FrameHeader | undefined {
  try {
    const r = new BitReader(frame);
    if (r.u(2) !== 2) return undefined; // frame_marker
    const low = r.u(1);
    const profile = (r.u(1) << 1) | low;
    if (profile === 3) r.u(1); // reserved_zero
    if (r.flag()) return { profile, showExistingFrame: true, keyframe: false };
    const keyframe = r.u(1) === 0;
    r.u(1); // show_frame
    r.u(1); // error_resilient_mode
    if (!keyframe) return { profile, showExistingFrame: false, keyframe };
    if (r.u(8) !== 0x49 || r.u(8) !== 0x83 || r.u(8) !== 0x42) return undefined;
    // color_config(): only its length matters here.
    if (profile >= 2) r.u(1); // ten_or_twelve_bit
    const colorSpace = r.u(3);
    if (colorSpace !== 7 /* CS_RGB */) {
      r.u(1); // color_range
      if (profile === 1 || profile === 3) r.u(3); // subsampling_x, subsampling_y, reserved_zero
    } else if (profile === 1 || profile === 3) {
      r.u(1); // reserved_zero
    }
    const width = r.u(16) + 1;
    const height = r.u(16) + 1;
    return { profile, showExistingFrame: false, keyframe, width, height };
  } catch (e) {
    if (e instanceof BitstreamError) return undefined;
    throw e;
  }
}

/**
 * Joins the layer frames of one picture (spatial SVC) into a VP9 superframe (VP9 spec Annex B),
 * the form a decoder reading an IVF file expects for several frames with one timestamp.
 */
export function buildVp9Superframe(frames: Uint8Array[]): Buffer {
  if (frames.length === 1) return Buffer.from(frames[0]);
  if (frames.length < 1 || frames.length > 8) {
    throw new RangeError("a VP9 superframe holds 1 to 8 frames");
  }
  const largest = Math.max(...frames.map((f) => f.length));
  const mag = largest < 0x100 ? 1 : largest < 0x10000 ? 2 : largest < 0x1000000 ? 3 : 4;
  const marker = 0xc0 | ((mag - 1) << 3) | (frames.length - 1);
  const index = Buffer.alloc(2 + mag * frames.length);
  index[0] = marker;
  frames.forEach((f, k) => {
    index.writeUIntLE(f.length, 1 + k * mag, mag);
  });
  index[index.length - 1] = marker;
  return Buffer.concat([...frames, index]);
}

/** Reassembles VP9 pictures (RFC 9628) into the frames an IVF "VP90" file holds. */
export class Vp9Assembler extends VideoAssembler {
  private layers: Uint8Array[] = [];
  private layer: Uint8Array[] | undefined;
  private keyframe = false;
  private ssSize: { width: number; height: number } | undefined;

  constructor(options?: AssemblerOptions) {
    super(options);
  }

  protected beginFrame(): void {
    this.layers = [];
    this.layer = undefined;
    this.keyframe = false;
    this.ssSize = undefined;
  }

  protected addPacket(packet: RtpView, first: boolean): boolean {
    const d = parseVp9Descriptor(packet.payload);
    if (!d) return false;
    if (d.beginning) {
      // A new layer frame while the previous one never saw its E bit: its tail is missing.
      if (this.layer) return false;
      if (first) this.keyframe = !d.interPicture && (d.sid ?? 0) === 0;
      this.layer = [];
    } else if (!this.layer) {
      return false;
    }
    if (d.ss && d.ss.resolutions.length > 0) {
      this.ssSize = d.ss.resolutions[d.ss.resolutions.length - 1];
    }
    this.layer.push(packet.payload.subarray(d.size));
    if (d.end) this.endLayer();
    return true;
  }

  protected endFrame(): CodecFrame | undefined {
    // Tolerate a sender that sets the marker but not E on the last packet.
    if (this.layer) this.endLayer();
    if (this.layers.length === 0 || this.layers.length > 8) return undefined;
    const data = buildVp9Superframe(this.layers);
    if (!this.keyframe) return { data, keyframe: false };
    const h = parseVp9FrameHeader(this.layers[0]);
    if (!h) return undefined;
    // P=0 also marks intra-only frames, which still need earlier state: not a place to start.
    if (!h.keyframe) return { data, keyframe: false };
    const size = this.ssSize ?? { width: h.width, height: h.height };
    return { data, keyframe: true, ...size };
  }

  private endLayer(): void {
    if (!this.layer) return;
    this.layers.push(Buffer.concat(this.layer));
    this.layer = undefined;
  }
}
