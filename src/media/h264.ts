import { toAnnexB } from "./annexb.js";
import { VideoAssembler, type AssemblerOptions, type CodecFrame } from "./assembler.js";
import { BitReader, BitstreamError } from "./bits.js";
import { parseH264Sps, unescapeRbsp } from "./h264-sps.js";
import type { RtpView } from "./rtp.js";

export const NAL_IDR = 5;
export const NAL_SEI = 6;
export const NAL_SPS = 7;
export const NAL_PPS = 8;
export const NAL_AUD = 9;
export const NAL_STAP_A = 24;
export const NAL_FU_A = 28;

export interface H264AssemblerOptions extends AssemblerOptions {
  /**
   * The `sprop-parameter-sets` value from the SDP fmtp line ("base64SPS,base64PPS,..."). Used
   * when a keyframe arrives without in-band SPS/PPS.
   */
  spropParameterSets?: string;
}

const startsIdr = (type: number): boolean => type === NAL_IDR || type === NAL_SPS;

/**
 * Whether this payload starts a keyframe: an IDR slice or an SPS (which a sender puts right before
 * its IDR), alone, inside a STAP-A, or as the first fragment of an FU-A (RFC 6184 §5.6-5.8). Runs
 * per forwarded packet: no allocation.
 */
export function h264StartsKeyframe(p: Uint8Array): boolean {
  if (p.length === 0) return false;
  const type = p[0] & 0x1f;
  if (startsIdr(type)) return true;
  if (type === NAL_STAP_A) {
    // 16-bit size then NAL unit, repeated.
    for (let i = 1; i + 2 < p.length; i += 2 + ((p[i] << 8) | p[i + 1])) {
      if (startsIdr(p[i + 2] & 0x1f)) return true;
    }
    return false;
  }
  if (type === NAL_FU_A && p.length > 1) return (p[1] & 0x80) !== 0 && startsIdr(p[1] & 0x1f);
  return false;
}

/** Decodes `sprop-parameter-sets` into NAL units; ignores empty or non-base64 entries. */
export function parseSpropParameterSets(value: string): Buffer[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => /^[A-Za-z0-9+/]+={0,2}$/.test(s))
    .map((s) => Buffer.from(s, "base64"))
    .filter((b) => b.length > 0);
}

/** The first ue(v) after a NAL header: seq_parameter_set_id / pic_parameter_set_id / first_mb. */
function firstUe(nal: Uint8Array, skipBytes: number): number | undefined {
  try {
    const r = new BitReader(unescapeRbsp(nal.subarray(1, 1 + skipBytes + 8)));
    r.u(8 * skipBytes);
    return r.ue();
  } catch (e) {
    if (e instanceof BitstreamError) return undefined;
    throw e;
  }
}

/**
 * Whether a NAL unit can begin an access unit. Slices continue one only when first_mb_in_slice
 * is not 0 — the one way to notice that the first slices of a multi-slice picture were never
 * received (joining mid-frame), since H.264 RTP has no start-of-frame bit.
 */
function canStartAccessUnit(nal: Uint8Array): boolean {
  const type = nal[0] & 0x1f;
  if (type >= 1 && type <= 5) return nal.length > 1 && (nal[1] & 0x80) !== 0;
  return true;
}

/**
 * Reassembles H.264 access units from RFC 6184 packets (single NAL, STAP-A, FU-A; i.e.
 * packetization-mode 0 and 1) into Annex B byte streams, one access unit per frame.
 */
export class H264Assembler extends VideoAssembler {
  private nals: Uint8Array[] = [];
  private fu: Uint8Array[] | undefined;
  /** Parameter sets by id, latest wins: in-band ones replace those from the SDP. */
  private readonly spsById = new Map<number, Uint8Array>();
  private readonly ppsById = new Map<number, Uint8Array>();

  constructor(options: H264AssemblerOptions = {}) {
    super(options);
    if (options.spropParameterSets) {
      for (const nal of parseSpropParameterSets(options.spropParameterSets)) this.remember(nal);
    }
  }

  protected beginFrame(): void {
    this.nals = [];
    this.fu = undefined;
  }

  protected addPacket(packet: RtpView, first: boolean): boolean {
    const p = packet.payload;
    if (p.length < 1 || p[0] & 0x80) return false; // empty, or F bit: known to be corrupt
    const type = p[0] & 0x1f;
    if (type >= 1 && type <= 23) {
      if (this.fu || (first && !canStartAccessUnit(p))) return false;
      this.nals.push(p);
      return true;
    }
    if (type === NAL_STAP_A) {
      if (this.fu) return false;
      let i = 1;
      let count = 0;
      while (i < p.length) {
        if (i + 2 > p.length) return false;
        const size = (p[i] << 8) | p[i + 1];
        i += 2;
        if (size === 0 || i + size > p.length) return false;
        const nal = p.subarray(i, i + size);
        if (first && count === 0 && !canStartAccessUnit(nal)) return false;
        this.nals.push(nal);
        i += size;
        count++;
      }
      return count > 0;
    }
    if (type === NAL_FU_A) {
      if (p.length < 3) return false;
      const startBit = (p[1] & 0x80) !== 0;
      const endBit = (p[1] & 0x40) !== 0;
      if (startBit) {
        if (this.fu) return false;
        // Rebuild the NAL header from the FU indicator's F/NRI and the FU header's type.
        const header = Uint8Array.of((p[0] & 0xe0) | (p[1] & 0x1f));
        if (first && !canStartAccessUnit(Buffer.concat([header, p.subarray(2, 3)]))) return false;
        this.fu = [header];
      } else if (!this.fu) {
        return false;
      }
      this.fu.push(p.subarray(2));
      if (endBit) {
        this.nals.push(Buffer.concat(this.fu));
        this.fu = undefined;
      }
      return true;
    }
    // STAP-B, MTAP, FU-B need interleaved mode, which WebRTC never negotiates.
    return false;
  }

  protected endFrame(): CodecFrame | undefined {
    if (this.fu || this.nals.length === 0) return undefined; // FU-A without its end fragment
    const nals = this.nals;
    this.nals = [];
    let hasIdr = false;
    let hasSps = false;
    let hasPps = false;
    for (const nal of nals) {
      const t = nal[0] & 0x1f;
      if (t === NAL_IDR) hasIdr = true;
      if (t === NAL_SPS) hasSps = true;
      if (t === NAL_PPS) hasPps = true;
      this.remember(nal);
    }
    if (!hasIdr) return { data: toAnnexB(nals), keyframe: false };
    // An IDR is only a usable starting point with its parameter sets right before it.
    if (!hasSps || !hasPps) {
      if (this.spsById.size === 0 || this.ppsById.size === 0) return undefined;
      const params = [...(hasSps ? [] : this.spsById.values()), ...(hasPps ? [] : this.ppsById.values())];
      const at = (nals[0][0] & 0x1f) === NAL_AUD ? 1 : 0;
      nals.splice(at, 0, ...params);
    }
    const sps = nals.find((n) => (n[0] & 0x1f) === NAL_SPS);
    const info = sps ? parseH264Sps(sps) : undefined;
    return {
      data: toAnnexB(nals),
      keyframe: true,
      ...(info ? { width: info.width, height: info.height } : {}),
    };
  }

  private remember(nal: Uint8Array): void {
    const t = nal[0] & 0x1f;
    if (t === NAL_SPS) {
      const id = firstUe(nal, 3);
      if (id !== undefined) this.spsById.set(id, Buffer.from(nal));
    } else if (t === NAL_PPS) {
      const id = firstUe(nal, 0);
      if (id !== undefined) this.ppsById.set(id, Buffer.from(nal));
    }
  }
}
