import { seqAdd, seqDiff, wrapSeq } from "./sequence.js";

/** What the buffer hands out, in sequence order: a packet, or how many packets are given up on. */
export type ReorderItem<T> = { type: "packet"; packet: T } | { type: "lost"; count: number };

export interface ReorderStats {
  /** Packets given up on (reported in "lost" items). */
  lost: number;
  /** Duplicates and packets that arrived after their slot was released or skipped. */
  dropped: number;
}

/**
 * Small reorder buffer keyed by the 16-bit RTP sequence number.
 *
 * A missing packet is waited for only until a packet `capacity` sequence numbers further on
 * arrives; then the hole is skipped and reported as `{type:"lost"}` right where it was, so a
 * depacketizer knows exactly which frame is damaged. Waiting is bounded by count rather than
 * time so the buffer stays pure (no clock) and holds at most `capacity` packets.
 *
 * The first `startupPackets` packets are held before anything is released: the stream starts at
 * the lowest of them, so a reordered first packet (usually part of the keyframe a recording
 * starts with) is not thrown away as "old".
 */
export class ReorderBuffer<T extends { sequenceNumber: number }> {
  readonly capacity: number;
  private readonly held = new Map<number, T>();
  /** The sequence number to release next; undefined until the first packet. */
  private next: number | undefined;
  private readonly startupPackets: number;
  /** Consecutive packets dropped as too old: many in a row means the sender restarted its sequence. */
  private lateRun = 0;
  private readonly counters: ReorderStats = { lost: 0, dropped: 0 };

  constructor(capacity = 64, startupPackets = Math.min(4, capacity)) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 32768) {
      throw new RangeError(`ReorderBuffer capacity must be an integer in 1..32768, got ${capacity}`);
    }
    this.capacity = capacity;
    this.startupPackets = Math.max(1, Math.min(startupPackets, capacity));
  }

  get stats(): Readonly<ReorderStats> {
    return this.counters;
  }

  /** Number of packets currently held back waiting for a hole to fill. */
  get size(): number {
    return this.held.size;
  }

  push(packet: T): ReorderItem<T>[] {
    const seq = wrapSeq(packet.sequenceNumber);
    const out: ReorderItem<T>[] = [];
    if (this.next === undefined) {
      if (this.held.has(seq)) {
        this.counters.dropped++;
      } else {
        this.held.set(seq, packet);
        if (this.held.size >= this.startupPackets) this.start(out);
      }
      return out;
    }
    const ahead = seqDiff(this.next, seq);
    if (ahead < 0 || this.held.has(seq)) {
      this.counters.dropped++;
      // A sender that restarts (new sequence base behind ours) would otherwise be dropped forever.
      if (ahead < 0 && ++this.lateRun >= this.capacity) {
        this.releaseAll(out);
        this.next = seq;
        this.lateRun = 0;
        this.held.set(seq, packet);
        this.drain(out);
      }
      return out;
    }
    this.lateRun = 0;
    if (ahead >= this.capacity) {
      // Make room: everything before the first slot of the new window is released or given up.
      this.advanceTo(seqAdd(seq, 1 - this.capacity), out);
    }
    this.held.set(seq, packet);
    this.drain(out);
    return out;
  }

  /** Releases everything still held (end of stream), reporting the holes between. */
  flush(): ReorderItem<T>[] {
    const out: ReorderItem<T>[] = [];
    if (this.next === undefined) this.start(out);
    this.releaseAll(out);
    return out;
  }

  /** Ends the start-up hold: begin at the earliest packet held, keeping the window invariant. */
  private start(out: ReorderItem<T>[]): void {
    const keys = [...this.held.keys()];
    if (keys.length === 0) return;
    let first = keys[0];
    let last = keys[0];
    for (const s of keys) {
      if (seqDiff(first, s) < 0) first = s;
      if (seqDiff(last, s) > 0) last = s;
    }
    this.next = first;
    if (seqDiff(first, last) >= this.capacity) {
      this.advanceTo(seqAdd(last, 1 - this.capacity), out);
    }
    this.drain(out);
  }

  private releaseAll(out: ReorderItem<T>[]): void {
    if (this.next === undefined || this.held.size === 0) return;
    let last = this.next;
    for (const s of this.held.keys()) if (seqDiff(last, s) > 0) last = s;
    this.advanceTo(seqAdd(last, 1), out);
  }

  /** Moves `next` forward to `target`, releasing held packets and reporting holes on the way. */
  private advanceTo(target: number, out: ReorderItem<T>[]): void {
    let lost = 0;
    while (this.next !== undefined && seqDiff(this.next, target) > 0) {
      if (this.held.size === 0) {
        // Nothing held: jump in one step instead of walking up to 32k empty slots.
        lost += seqDiff(this.next, target);
        this.next = target;
        break;
      }
      const p = this.held.get(this.next);
      if (p === undefined) {
        lost++;
      } else {
        this.held.delete(this.next);
        if (lost > 0) this.reportLost(lost, out);
        lost = 0;
        out.push({ type: "packet", packet: p });
      }
      this.next = seqAdd(this.next, 1);
    }
    if (lost > 0) this.reportLost(lost, out);
  }

  private drain(out: ReorderItem<T>[]): void {
    while (this.next !== undefined) {
      const p = this.held.get(this.next);
      if (p === undefined) return;
      this.held.delete(this.next);
      out.push({ type: "packet", packet: p });
      this.next = seqAdd(this.next, 1);
    }
  }

  private reportLost(count: number, out: ReorderItem<T>[]): void {
    this.counters.lost += count;
    out.push({ type: "lost", count });
  }
}
