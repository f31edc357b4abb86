// RTP sequence-number bookkeeping for what a track forwards (the arithmetic itself is
// src/media/sequence.ts). Pure functions and typed arrays: called on the forwarding path, so
// nothing here allocates per packet.
import { isNewer, seqAdd, wrapSeq } from "../media/sequence.js";

const RECENT = 64;

/**
 * Closes the holes a track leaves in its sequence numbers by dropping packets (padding-only
 * bandwidth probes, which a sender like Chrome puts on the media SSRC when no RTX was negotiated).
 * Without this a viewer sees a gap, NACKs a packet no one has, and freezes until the next keyframe.
 * Every packet after n drops is renumbered n lower; a late packet older than some recent drops is
 * shifted only by the drops before it.
 */
export class SequenceCompactor {
  private readonly recent = new Int32Array(RECENT).fill(-1);
  private next = 0;
  private dropped = 0;
  private newest = -1;

  /** Records that the packet with this sequence number is not forwarded. */
  drop(seq: number): void {
    for (let i = 0; i < RECENT; i++) if (this.recent[i] === seq) return; // a duplicate shifts nothing
    this.recent[this.next] = seq;
    this.next = (this.next + 1) % RECENT;
    this.dropped++;
    if (this.newest < 0 || isNewer(seq, this.newest)) this.newest = seq;
  }

  /** The sequence number a forwarded packet goes out with. */
  map(seq: number): number {
    if (this.dropped === 0) return seq;
    let offset = this.dropped;
    if (!isNewer(seq, this.newest)) {
      for (let i = 0; i < RECENT; i++) {
        const d = this.recent[i]!;
        if (d >= 0 && isNewer(d, seq)) offset--;
      }
    }
    return seqAdd(seq, -offset);
  }
}

/** The minimal view of a parsed RTCP generic NACK (RFC 4585 §6.2.1). */
export interface NackView {
  header: { length: number };
  lost: number[];
}

/**
 * The sequence numbers a generic NACK really asks for. werift 0.25 parses a NACK to the end of
 * the compound packet, so the RTCP packets after it (Chrome sends REMB there) come back as more
 * "lost" entries, and it does not wrap pid + n past 65535. The header's length says how many
 * PID/BLP pairs there are; each pair's entries are its PID and then up to 16 numbers above it.
 */
export function nackedSequences(nack: NackView): number[] {
  const pairs = nack.header.length - 2;
  const out: number[] = [];
  let seen = 0;
  let pid = -1;
  for (const entry of nack.lost) {
    const offset = entry - pid;
    if (pid < 0 || offset <= 0 || offset > 16) {
      if (seen === pairs) break;
      seen++;
      pid = entry;
    }
    out.push(wrapSeq(entry));
  }
  return out;
}
