/**
 * The minimal view of an RTP packet that the recording code needs. Kept free of any WebRTC
 * library type so that src/media stays pure bytes-in/bytes-out and testable on its own.
 */
export interface RtpView {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

/** An RtpView plus the header fields a receiver uses to demultiplex streams. */
export interface RtpPacket extends RtpView {
  payloadType: number;
  ssrc: number;
}

/**
 * Parses an RTP datagram (RFC 3550 §5.1): skips CSRCs and the header extension, strips padding.
 * Returns undefined for anything that is not RTP version 2 or is truncated, so a caller can feed
 * raw socket data without try/catch.
 */
export function parseRtp(buf: Uint8Array): RtpPacket | undefined {
  if (buf.length < 12 || buf[0] >> 6 !== 2) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const csrcCount = buf[0] & 0x0f;
  let offset = 12 + 4 * csrcCount;
  if (buf[0] & 0x10) {
    if (offset + 4 > buf.length) return undefined;
    offset += 4 + 4 * view.getUint16(offset + 2);
  }
  let end = buf.length;
  if (buf[0] & 0x20) {
    // The last byte counts the padding bytes, itself included.
    const pad = buf[buf.length - 1];
    if (pad === 0) return undefined;
    end -= pad;
  }
  if (offset > end) return undefined;
  return {
    payloadType: buf[1] & 0x7f,
    marker: (buf[1] & 0x80) !== 0,
    sequenceNumber: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    payload: buf.subarray(offset, end),
  };
}

/**
 * Turns 32-bit RTP timestamps into a monotonic-ish 53-bit-safe number line. Each step is read as
 * the signed 32-bit difference from the previous timestamp, so both the wrap at 2^32 and small
 * backward steps (reordered audio, B-frames) come out right.
 */
export class TimestampUnwrapper {
  private last: number | undefined;
  private value = 0;

  unwrap(timestamp: number): number {
    const ts = timestamp >>> 0;
    if (this.last === undefined) {
      this.value = ts;
    } else {
      this.value += (ts - this.last) | 0;
    }
    this.last = ts;
    return this.value;
  }
}
