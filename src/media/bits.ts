/** Thrown when a parser reads past the end of its input; parsers turn it into "malformed". */
export class BitstreamError extends Error {}

/** MSB-first bit reader for codec headers (H.264 SPS, VP9 uncompressed header). */
export class BitReader {
  private pos = 0;

  constructor(private readonly data: Uint8Array) {}

  get bitsLeft(): number {
    return this.data.length * 8 - this.pos;
  }

  u(bits: number): number {
    // Accumulate arithmetically: bitwise ops would turn a 32-bit value negative.
    let v = 0;
    for (let i = 0; i < bits; i++) {
      if (this.pos >= this.data.length * 8) throw new BitstreamError("read past end of data");
      const bit = (this.data[this.pos >> 3] >> (7 - (this.pos & 7))) & 1;
      v = v * 2 + bit;
      this.pos++;
    }
    return v;
  }

  flag(): boolean {
    return this.u(1) === 1;
  }

  /** Unsigned exp-Golomb, ue(v) of H.264 §9.1. */
  ue(): number {
    let zeros = 0;
    while (this.u(1) === 0) {
      // 32 leading zeros cannot occur in a valid stream; stop before the value loses precision.
      if (++zeros > 31) throw new BitstreamError("exp-Golomb code too long");
    }
    return 2 ** zeros - 1 + this.u(zeros);
  }

  /** Signed exp-Golomb, se(v): 1, -1, 2, -2, ... */
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}
