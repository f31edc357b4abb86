// Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
// §3.1) toward a publisher: which transport sequence numbers arrived and when, so its send-side
// bandwidth estimator can ramp up. werift 0.25's own generator starves Chrome's estimate (missing
// packets reported as received, the first delta measured from the wrong reference, feedback
// truncated when its length is not a multiple of 4), and Chrome then sends at a fraction of what
// the link carries. Pure: it builds the RTCP bytes; the caller sends them.

import { seqDiff } from "../media/sequence.js";

const CAPACITY = 4096;
/** Statuses per feedback packet at most; more waits for the next one. */
const MAX_STATUSES = 1024;

const NOT_RECEIVED = 0;
const SMALL_DELTA = 1;
const LARGE_DELTA = 2;

export class TwccRecorder {
  /** Arrival time in µs of each pending extended sequence number, in a ring indexed by it. */
  private readonly arrival = new Float64Array(CAPACITY).fill(-1);
  private highest = -1;
  /** Next extended sequence number to report: everything before it was in an earlier feedback. */
  private next = -1;
  private count = 0;
  private readonly statuses = new Uint8Array(MAX_STATUSES);
  private readonly deltas = new Int32Array(MAX_STATUSES);

  constructor(
    private readonly senderSsrc: number,
    private mediaSsrc = 0,
  ) {}

  /** A packet with this transport-wide sequence number arrived at `arrivalUs` (monotonic µs). */
  record(sequence: number, arrivalUs: number, ssrc: number): void {
    let ext: number;
    if (this.highest < 0) {
      ext = sequence + 0x10000; // room below for packets that arrive late
      this.next = ext;
      this.mediaSsrc ||= ssrc;
    } else {
      // The extended number nearest the highest seen (wrap-around either way).
      const diff = seqDiff(this.highest & 0xffff, sequence);
      ext = this.highest + diff;
    }
    if (ext < this.next || ext <= this.highest - CAPACITY) return; // already reported, or too old
    if (ext > this.highest) {
      // Forget what the ring held for the numbers skipped over (lost packets).
      for (let s = Math.max(this.highest + 1, ext - CAPACITY + 1); s < ext; s++) this.arrival[s % CAPACITY] = -1;
      this.highest = ext;
    }
    this.arrival[ext % CAPACITY] = arrivalUs;
    this.count++;
    if (this.highest - this.next >= CAPACITY) this.next = this.highest - CAPACITY + 1;
  }

  /** Packets recorded since the last feedback. */
  get pending(): number {
    return this.count;
  }

  /**
   * The next feedback packet (RTCP RTPFB FMT 15, padded to 32 bits), or undefined when nothing
   * new arrived. `fbCount` is the packet's 8-bit feedback sequence number.
   */
  build(fbCount: number): Buffer | undefined {
    if (this.count === 0 || this.highest < this.next) return undefined;
    // Each report starts where the last one ended, so packets lost in between are reported too.
    const base = this.next;
    let first = base;
    while (first <= this.highest && this.arrival[first % CAPACITY]! < 0) first++;
    if (first > this.highest) return undefined;
    const last = Math.min(this.highest, base + MAX_STATUSES - 1);
    const n = last - base + 1;
    const referenceUs = this.arrival[first % CAPACITY]!;
    const reference = Math.floor(referenceUs / 64_000);
    // Deltas in 250 µs ticks, each from the previous packet's time as the receiver will rebuild
    // it, so rounding never accumulates.
    let previous = reference * 64_000;
    let end = last;
    for (let i = 0; i < n; i++) {
      const at = this.arrival[(base + i) % CAPACITY]!;
      if (at < 0) {
        this.statuses[i] = NOT_RECEIVED;
        continue;
      }
      const ticks = Math.round((at - previous) / 250);
      if (ticks < -32768 || ticks > 32767) {
        end = base + i - 1; // too far apart for one packet: the rest goes in the next
        break;
      }
      this.statuses[i] = ticks >= 0 && ticks <= 255 ? SMALL_DELTA : LARGE_DELTA;
      this.deltas[i] = ticks;
      previous += ticks * 250;
    }
    const statusCount = end - base + 1;

    const chunks: number[] = [];
    const deltaBytes: number[] = [];
    for (let i = 0; i < statusCount; ) {
      let run = 1;
      while (i + run < statusCount && this.statuses[i + run] === this.statuses[i] && run < 0x1fff) run++;
      if (run >= 7) {
        chunks.push((this.statuses[i]! << 13) | run); // run-length chunk: T=0, S, length
        i += run;
      } else {
        let word = 0xc000; // status vector chunk: T=1, S=1 (two bits per status), 7 statuses
        for (let k = 0; k < 7; k++) word |= (i + k < statusCount ? this.statuses[i + k]! : 0) << (12 - 2 * k);
        chunks.push(word);
        i += 7;
      }
    }
    for (let i = 0; i < statusCount; i++) {
      const s = this.statuses[i];
      if (s === SMALL_DELTA) deltaBytes.push(this.deltas[i]!);
      else if (s === LARGE_DELTA) deltaBytes.push((this.deltas[i]! >> 8) & 0xff, this.deltas[i]! & 0xff);
    }

    const body = 8 + 8 + chunks.length * 2 + deltaBytes.length;
    const padding = (4 - (body % 4)) % 4;
    const total = 4 + body + padding;
    const buf = Buffer.alloc(total);
    buf[0] = 0x80 | (padding > 0 ? 0x20 : 0) | 15; // V=2, P, FMT=15
    buf[1] = 205; // RTPFB
    buf.writeUInt16BE(total / 4 - 1, 2);
    buf.writeUInt32BE(this.senderSsrc >>> 0, 4);
    buf.writeUInt32BE(this.mediaSsrc >>> 0, 8);
    buf.writeUInt16BE(base & 0xffff, 12);
    buf.writeUInt16BE(statusCount, 14);
    buf.writeUIntBE(reference & 0xffffff, 16, 3);
    buf[19] = fbCount & 0xff;
    let o = 20;
    for (const c of chunks) {
      buf.writeUInt16BE(c, o);
      o += 2;
    }
    for (const d of deltaBytes) buf[o++] = d;
    if (padding > 0) buf[total - 1] = padding;

    for (let s = this.next; s <= end; s++) this.arrival[s % CAPACITY] = -1;
    this.next = end + 1;
    this.count = 0;
    for (let s = this.next; s <= this.highest; s++) if (this.arrival[s % CAPACITY]! >= 0) this.count++;
    return buf;
  }
}
