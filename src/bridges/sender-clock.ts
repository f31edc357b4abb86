// RTCP sender reports toward an egress FFmpeg, and the clock they are read from: they map each
// track's RTP timestamps to one wall clock, so FFmpeg's RTP demuxer puts audio and video on one
// timeline.

import { ntpFraction, ntpSeconds } from "../media/ntp.js";

/** An RTP timestamp this far (ms) off the arrival clock re-anchors the SenderClock. */
const REANCHOR_MS = 5000;

/** An RTCP sender report (RFC 3550 §6.4.1) without report blocks: 28 bytes. */
export function senderReport(ssrc: number, wallMs: number, rtpTimestamp: number, packets: number, octets: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  b.writeUInt32BE(ntpSeconds(wallMs) >>> 0, 8);
  b.writeUInt32BE(ntpFraction(wallMs) >>> 0, 12);
  b.writeUInt32BE(rtpTimestamp >>> 0, 16);
  b.writeUInt32BE(packets >>> 0, 20);
  b.writeUInt32BE(octets >>> 0, 24);
  return b;
}

/**
 * Sender reports for one track: the wall clock is anchored to the RTP timestamp once (at the first
 * packet after arming) and then follows the RTP clock, so every report says the same thing about
 * the media's timeline. (FFmpeg re-anchors on each report: reports taken from jittery arrival
 * times would make its timestamps jump back and forth, and late packets — a stalled publisher, a
 * busy machine — must keep their media time, not take the time they arrived.) Only a jump of the
 * RTP timestamp itself (an encoder restart: consecutive packets more than REANCHOR_MS apart in RTP
 * time than in arrival time) re-anchors.
 */
export class SenderClock {
  private anchorWall = 0;
  private lastTs = 0;
  private lastArrival = 0;
  /** RTP ticks since the anchor, unwrapped. */
  private ticks = 0;
  anchored = false;
  /** Times the clock re-anchored on a timestamp jump. */
  jumps = 0;

  constructor(private readonly clockRate: number) {}

  /** The wall clock (ms) of RTP timestamp `ts` arriving at `nowMs`, anchoring on the first call. */
  wallOf(ts: number, nowMs: number): number {
    if (!this.anchored) return this.anchor(ts, nowMs);
    const delta = (ts - this.lastTs) | 0;
    const deltaMs = (delta * 1000) / this.clockRate;
    if (Math.abs(deltaMs - (nowMs - this.lastArrival)) > REANCHOR_MS) {
      this.jumps++;
      return this.anchor(ts, nowMs);
    }
    this.ticks += delta;
    this.lastTs = ts >>> 0;
    this.lastArrival = nowMs;
    return this.anchorWall + (this.ticks * 1000) / this.clockRate;
  }

  private anchor(ts: number, nowMs: number): number {
    this.anchored = true;
    this.anchorWall = nowMs;
    this.lastTs = ts >>> 0;
    this.lastArrival = nowMs;
    this.ticks = 0;
    return nowMs;
  }

  reset(): void {
    this.anchored = false;
  }
}
