// RTP sequence-number arithmetic (RFC 3550 §A.1): 16-bit numbers that wrap at 65536. The one
// place that knows the masks; the forwarding path calls it per packet, so nothing here allocates.

/** Signed distance a → b between two 16-bit sequence numbers, in [-32768, 32767]. */
export function seqDiff(a: number, b: number): number {
  return (((b - a) & 0xffff) << 16) >> 16;
}

/** True when 16-bit sequence number a comes after b. */
export function isNewer(a: number, b: number): boolean {
  return a !== b && ((a - b) & 0xffff) < 0x8000;
}

/** A number taken modulo 2^16: a sequence number as it goes on the wire. */
export function wrapSeq(n: number): number {
  return n & 0xffff;
}

/** `seq + n`, wrapped to 16 bits (n may be negative). */
export function seqAdd(seq: number, n: number): number {
  return (seq + n) & 0xffff;
}
