// One forwarded video stream out of a simulcast publisher's layers (RFC 8853 rids): the best layer
// that is arriving is forwarded, and a change of layer happens only at a keyframe of the new one,
// with sequence numbers and timestamps carried on so viewers see one continuous stream.
// Runs on the forwarding path: no await, no logging, no allocation per packet.

import type { RtpPacket } from "werift";
import type { CodecName } from "../media/codecs.js";
import { startsKeyframe } from "../media/keyframe.js";
import { isNewer, seqAdd, wrapSeq } from "../media/sequence.js";
import { SequenceCompactor } from "./sequence.js";

/** How often layer rates are measured and the choice is reconsidered. */
const EVALUATE_MS = 250;
/** A layer with no packet for this long has stopped (disabled by the sender, or out of bandwidth). */
const STALE_MS = 600;
/** A higher layer must carry this much more than the current one to be switched to. */
const UPGRADE_MARGIN = 1.25;

class Layer {
  ssrc = -1;
  bytes = 0;
  /** Bits per second, smoothed over the last evaluations. */
  rate = 0;
  lastAt = -Infinity;
  /** Sequence number of the keyframe this layer was switched to at: older packets are not forwarded. */
  switchSeq = -1;
  readonly sequence = new SequenceCompactor();

  constructor(readonly rid: string) {}
}

export interface LayerState {
  rid: string;
  ssrc?: number;
  bitrate: number;
  active: boolean;
  forwarded: boolean;
}

export class SimulcastSelector {
  private readonly layers: Layer[] = [];
  private current: Layer | undefined;
  private target: Layer | undefined;
  private seqOffset = 0;
  private tsOffset = 0;
  private lastSeq = -1;
  private lastTs = 0;
  private lastAt = 0;
  /** The SSRC every forwarded packet carries, whatever layer it came from (egress readers demux by it). */
  private outSsrc = -1;
  private lastEvaluation = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly codec: CodecName,
    private readonly clockRate: number,
    /** Where the chosen layer's packets go (the track's fan-out). */
    private readonly out: (packet: RtpPacket) => void,
    /** Asked when a keyframe of keyframeSsrc() is needed to switch. */
    private readonly needKeyframe: () => void,
  ) {
    this.timer = setInterval(() => this.evaluate(), EVALUATE_MS);
    this.timer.unref();
  }

  /** A layer's packets start arriving through write(layer, …) with the handle returned here. */
  addLayer(rid: string): number {
    const existing = this.layers.findIndex((l) => l.rid === rid);
    if (existing >= 0) return existing;
    this.layers.push(new Layer(rid));
    return this.layers.length - 1;
  }

  write(index: number, packet: RtpPacket): void {
    const layer = this.layers[index];
    if (!layer) return;
    const header = packet.header;
    const now = performance.now();
    layer.ssrc = header.ssrc;
    layer.bytes += packet.payload.length;
    layer.lastAt = now;
    // Padding-only probes: each layer has its own sequence space to keep whole.
    if (packet.payload.length === 0) {
      layer.sequence.drop(header.sequenceNumber);
      return;
    }
    const seq = layer.sequence.map(header.sequenceNumber);
    if (layer !== this.current) {
      if (this.current !== undefined && layer !== this.target) return;
      if (!startsKeyframe(this.codec, packet.payload)) return;
      this.switchTo(layer, seq, header.timestamp, now);
    } else if (isNewer(layer.switchSeq, seq)) {
      return; // from before the keyframe this layer was switched to
    }
    header.sequenceNumber = seqAdd(seq, this.seqOffset);
    header.timestamp = (header.timestamp + this.tsOffset) >>> 0;
    header.ssrc = this.outSsrc;
    if (isNewer(header.sequenceNumber, this.lastSeq) || this.lastSeq < 0) {
      this.lastSeq = header.sequenceNumber;
      this.lastTs = header.timestamp;
      this.lastAt = now;
    }
    this.out(packet);
  }

  private switchTo(layer: Layer, seq: number, timestamp: number, now: number): void {
    if (this.current === undefined && this.lastSeq < 0) {
      // The first layer: its numbers go out as they are.
      this.seqOffset = 0;
      this.tsOffset = 0;
      this.outSsrc = layer.ssrc;
    } else {
      // Carry on one past the last number sent, and the timestamp by the time that has passed.
      this.seqOffset = wrapSeq(this.lastSeq + 1 - seq);
      const elapsed = Math.max(1, Math.round(((now - this.lastAt) * this.clockRate) / 1000));
      this.tsOffset = (this.lastTs + elapsed - timestamp) >>> 0;
    }
    layer.switchSeq = seq;
    this.current = layer;
    this.target = undefined;
  }

  /** The SSRC a keyframe request should go to: the layer being switched to, else the current one. */
  keyframeSsrcs(): number[] {
    const layer = this.target ?? this.current;
    if (layer && layer.ssrc >= 0) return [layer.ssrc];
    // Nothing chosen yet: whichever layer answers first becomes the stream.
    return this.layers.filter((l) => l.ssrc >= 0).map((l) => l.ssrc);
  }

  /** Picks the layer to forward: the highest-rate one still arriving, moving up only by a margin. */
  private evaluate(): void {
    const now = performance.now();
    const seconds = (now - this.lastEvaluation) / 1000;
    this.lastEvaluation = now;
    if (seconds <= 0) return;
    let best: Layer | undefined;
    for (const l of this.layers) {
      const measured = (l.bytes * 8) / seconds;
      l.bytes = 0;
      l.rate = l.rate === 0 ? measured : 0.5 * l.rate + 0.5 * measured;
      if (now - l.lastAt > STALE_MS) continue;
      if (!best || l.rate > best.rate) best = l;
    }
    const current = this.current;
    if (!best || best === current) {
      this.target = undefined;
      return;
    }
    const currentAlive = current !== undefined && now - current.lastAt <= STALE_MS;
    if (currentAlive && best.rate < current.rate * UPGRADE_MARGIN) {
      this.target = undefined;
      return;
    }
    if (current === undefined) return; // the first keyframe of any layer starts the stream
    // Asked again on every evaluation until the keyframe comes (the requester coalesces).
    this.target = best;
    this.needKeyframe();
  }

  get layerStates(): LayerState[] {
    const now = performance.now();
    return this.layers.map((l) => ({
      rid: l.rid,
      ssrc: l.ssrc >= 0 ? l.ssrc : undefined,
      bitrate: Math.round(l.rate),
      active: now - l.lastAt <= STALE_MS,
      forwarded: l === this.current,
    }));
  }

  close(): void {
    clearInterval(this.timer);
  }
}
