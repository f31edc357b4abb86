import { VideoAssembler, type AssemblerOptions, type CodecFrame } from "./assembler.js";
import { BitReader, BitstreamError } from "./bits.js";
import type { RtpView } from "./rtp.js";

export const OBU_SEQUENCE_HEADER = 1;
export const OBU_TEMPORAL_DELIMITER = 2;
export const OBU_TILE_LIST = 8;

/** Reads an unsigned LEB128 (AV1 spec §4.10.5); undefined when cut short or over 8 bytes. */
export function readLeb128(buf: Uint8Array, offset: number): { value: number; length: number } | undefined {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    if (offset + i >= buf.length) return undefined;
    const b = buf[offset + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return { value, length: i + 1 };
  }
  return undefined;
}

export function writeLeb128(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
  return Buffer.from(out);
}

/** The aggregation header of the AV1 RTP payload (AOM RTP spec §4.4). */
export interface Av1AggregationHeader {
  /** Z: the first OBU element continues an OBU fragment from the previous packet. */
  continuation: boolean;
  /** Y: the last OBU element continues in the next packet. */
  continues: boolean;
  /** W: number of OBU elements, 0 meaning "each has a length field". */
  elementCount: number;
  /** N: first packet of a coded video sequence. */
  newSequence: boolean;
}

const AGGREGATION_Z = 0x80;
const AGGREGATION_Y = 0x40;
const AGGREGATION_N = 0x08;

export function parseAv1AggregationHeader(byte: number): Av1AggregationHeader {
  return {
    continuation: (byte & AGGREGATION_Z) !== 0,
    continues: (byte & AGGREGATION_Y) !== 0,
    elementCount: (byte >> 4) & 0x03,
    newSequence: (byte & AGGREGATION_N) !== 0,
  };
}

/**
 * Whether this payload starts a keyframe: Z=0 (not the tail of an OBU) and N=1 (the first packet
 * of a new coded video sequence). Runs per forwarded packet: no allocation.
 */
export function av1StartsKeyframe(p: Uint8Array): boolean {
  return p.length > 0 && (p[0] & AGGREGATION_Z) === 0 && (p[0] & AGGREGATION_N) !== 0;
}

export interface Av1SequenceHeader {
  profile: number;
  width: number;
  height: number;
}

/** AV1 spec §4.10.3 uvlc(). */
function uvlc(r: BitReader): number {
  let zeros = 0;
  while (!r.flag()) {
    if (++zeros >= 32) return 2 ** 32 - 1;
  }
  return r.u(zeros) + 2 ** zeros - 1;
}

/** Reads a sequence header OBU payload (AV1 spec §5.5) up to the maximum frame size. */
export function parseAv1SequenceHeader(payload: Uint8Array): Av1SequenceHeader | undefined {
  try {
    const r = new BitReader(payload);
    const profile = r.u(3);
    r.u(1); // still_picture
    if (r.flag()) {
      r.u(5); // reduced_still_picture_header: seq_level_idx[0]
    } else {
      let decoderModelInfo = false;
      let bufferDelayLength = 0;
      if (r.flag()) {
        // timing_info()
        r.u(32);
        r.u(32);
        if (r.flag()) uvlc(r);
        decoderModelInfo = r.flag();
        if (decoderModelInfo) {
          bufferDelayLength = r.u(5) + 1;
          r.u(32);
          r.u(5);
          r.u(5);
        }
      }
      const initialDisplayDelay = r.flag();
      const operatingPoints = r.u(5) + 1;
      for (let i = 0; i < operatingPoints; i++) {
        r.u(12); // operating_point_idc
        if (r.u(5) > 7) r.u(1); // seq_level_idx, seq_tier
        if (decoderModelInfo && r.flag()) {
          r.u(bufferDelayLength);
          r.u(bufferDelayLength);
          r.u(1);
        }
        if (initialDisplayDelay && r.flag()) r.u(4);
      }
    }
    const widthBits = r.u(4) + 1;
    const heightBits = r.u(4) + 1;
    return { profile, width: r.u(widthBits) + 1, height: r.u(heightBits) + 1 };
  } catch (e) {
    if (e instanceof BitstreamError) return undefined;
    throw e;
  }
}

/** A temporal delimiter with obu_has_size_field set and size 0. */
const TEMPORAL_DELIMITER = Buffer.from([(OBU_TEMPORAL_DELIMITER << 3) | 0x02, 0x00]);

/**
 * Reassembles AV1 temporal units from RTP (AOM "RTP Payload Format for AV1") into the
 * low-overhead bitstream format IVF "AV01" files hold: a temporal delimiter, then every OBU with
 * obu_has_size_field set and its LEB128 size. RTP senders usually strip the size fields (the
 * element length already says it) and must drop temporal delimiters, so both are rebuilt here.
 */
export class Av1Assembler extends VideoAssembler {
  private obus: Buffer[] = [];
  private fragment: Uint8Array[] | undefined;
  private newSequence = false;
  private hasSequenceHeader = false;
  private size: { width: number; height: number } | undefined;
  /** A sequence header seen before: a later N packet may rely on it. */
  private knownSequence = false;

  constructor(options?: AssemblerOptions) {
    super(options);
  }

  protected beginFrame(): void {
    this.obus = [];
    this.fragment = undefined;
    this.newSequence = false;
    this.hasSequenceHeader = false;
    this.size = undefined;
  }

  protected addPacket(packet: RtpView, first: boolean): boolean {
    const p = packet.payload;
    if (p.length < 2) return false;
    const h = parseAv1AggregationHeader(p[0]);
    if (first) {
      // A temporal unit cannot begin with the tail of an OBU.
      if (h.continuation) return false;
      this.newSequence = h.newSequence;
    } else if (h.continuation !== (this.fragment !== undefined)) {
      return false; // a fragment's head or tail is missing
    }
    let i = 1;
    for (let k = 1; i < p.length; k++) {
      let len: number;
      if (h.elementCount === 0 || k < h.elementCount) {
        const leb = readLeb128(p, i);
        if (!leb) return false;
        i += leb.length;
        len = leb.value;
      } else {
        len = p.length - i; // the W-th element has no length field and fills the packet
      }
      if (len === 0 || i + len > p.length) return false;
      const element = p.subarray(i, i + len);
      i += len;
      if (k === 1 && h.continuation) this.fragment?.push(element);
      else this.fragment = [element];
      const last = i >= p.length;
      if (last && h.continues) break; // the OBU goes on in the next packet
      if (!this.endObu()) return false;
    }
    return true;
  }

  protected endFrame(): CodecFrame | undefined {
    if (this.fragment || this.obus.length === 0) return undefined;
    const data = Buffer.concat([TEMPORAL_DELIMITER, ...this.obus]);
    if (this.hasSequenceHeader) this.knownSequence = true;
    const keyframe = this.newSequence && this.knownSequence;
    return { data, keyframe, ...(keyframe && this.size ? this.size : {}) };
  }

  /** Completes the OBU in `fragment`, rewriting its header to carry a size field. */
  private endObu(): boolean {
    const obu = this.fragment ? Buffer.concat(this.fragment) : undefined;
    this.fragment = undefined;
    if (!obu || obu.length < 1 || obu[0] & 0x80) return false; // forbidden bit
    const type = (obu[0] >> 3) & 0x0f;
    const headerLen = obu[0] & 0x04 ? 2 : 1;
    if (obu.length < headerLen) return false;
    let payload = obu.subarray(headerLen);
    if (obu[0] & 0x02) {
      const leb = readLeb128(obu, headerLen);
      // One element is one OBU: a size field must account for exactly the rest of it.
      if (!leb || headerLen + leb.length + leb.value !== obu.length) return false;
      payload = obu.subarray(headerLen + leb.length, headerLen + leb.length + leb.value);
    }
    if (type === OBU_TEMPORAL_DELIMITER || type === OBU_TILE_LIST) return true;
    if (type === OBU_SEQUENCE_HEADER) {
      const seq = parseAv1SequenceHeader(payload);
      if (!seq) return false;
      this.hasSequenceHeader = true;
      this.size = { width: seq.width, height: seq.height };
    }
    const header = Buffer.from(obu.subarray(0, headerLen));
    header[0] |= 0x02;
    this.obus.push(Buffer.concat([header, writeLeb128(payload.length), payload]));
    return true;
  }
}
