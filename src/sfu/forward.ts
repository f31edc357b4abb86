// The fast path: one publisher packet -> every sink of its track, synchronously.
// No await, no logging, no per-subscriber copy of the packet here: a sink that needs to change
// the packet for its own negotiation does so on its own reused state.

import type { RtpPacket } from "werift";
import { PacketHistory } from "./history.js";
import type { CodecName } from "../media/codecs.js";
import { startsKeyframe } from "../media/keyframe.js";
import type { MediaKind } from "./sdp.js";
import { SequenceCompactor } from "./sequence.js";

/** Where a forwarded packet goes: a subscriber's sender, a recorder, an egress port. */
export interface PacketSink {
  /** Called synchronously for each packet; must not throw and must not keep `packet` past the call. */
  write(packet: RtpPacket): void;
  /**
   * Shared by sinks that send a packet to all their viewers at once (native-output.ts): write
   * gathers, and the fan-out flushes once every sink has the packet, before the packet is let go.
   */
  readonly batch?: PacketBatch;
}

/** Sends what its sinks' writes gathered for the current packet; must not throw. */
export interface PacketBatch {
  flush(): void;
}

interface Output {
  sink: PacketSink;
  /** A video sink gets nothing until the first packet of a keyframe, so it never sees orphan deltas. */
  waiting: boolean;
  /** A subscriber's sender: what it is written counts as sent to viewers (recorders and egress do not). */
  viewer: boolean;
}

export class TrackFanout {
  private outputs: Output[] = [];
  /** The distinct batches of the outputs' sinks, flushed after each packet. */
  private batches: PacketBatch[] = [];
  packets = 0;
  bytes = 0;
  /** Packets and bytes written to viewers' sinks, each packet counted once per viewer (for /metrics). */
  viewerPackets = 0;
  viewerBytes = 0;
  /** Video packets since the last keyframe's first packet, replayed to a joiner (GOP cache). */
  private gop: RtpPacket[] = [];
  private gopTimestamp = -1;
  private readonly sequence = new SequenceCompactor();
  /** The forwarded packets with their extensions, shared by the track's viewers (resends, extension rewrite). */
  readonly history: PacketHistory;
  /** Set while a room's continuity splice takes this source track's packets (continuity.ts). */
  private diverted: ((packet: RtpPacket) => void) | undefined;

  constructor(
    readonly kind: MediaKind,
    readonly codec: CodecName,
    /** Asked when a sink starts waiting for a keyframe (a joining subscriber, a starting recorder). */
    private readonly requestKeyframe: () => void,
    /**
     * 0 = no cache: a joiner waits for the keyframe its PLI asks for (fastest with browsers and
     * OBS, which answer PLI at once). Otherwise up to this many packets of the current GOP are
     * kept and replayed to a joiner, for encoders that cannot be asked (FFmpeg ingests).
     */
    private readonly gopCachePackets = 0,
  ) {
    this.history = new PacketHistory(kind);
  }

  add(sink: PacketSink, opts: { waitForKeyframe?: boolean; viewer?: boolean } = {}): void {
    let waiting = opts.waitForKeyframe ?? this.kind === "video";
    const viewer = opts.viewer ?? false;
    if (waiting && this.gop.length > 0) {
      for (const p of this.gop) {
        sink.write(p);
        if (viewer) this.countViewerPacket(p);
        sink.batch?.flush();
      }
      waiting = false;
    }
    this.outputs = [...this.outputs, { sink, waiting, viewer }];
    this.batches = batchesOf(this.outputs);
    if (waiting) this.requestKeyframe();
  }

  private countViewerPacket(packet: RtpPacket): void {
    this.viewerPackets++;
    this.viewerBytes += packet.header.payloadOffset + packet.payload.length;
  }

  /** Hands every packet, counted but untouched, to `to` instead of this track's sinks; undefined ends that. */
  divert(to: ((packet: RtpPacket) => void) | undefined): void {
    this.diverted = to;
  }

  remove(sink: PacketSink): void {
    this.outputs = this.outputs.filter((o) => o.sink !== sink);
    this.batches = batchesOf(this.outputs);
  }

  forward(packet: RtpPacket): void {
    const header = packet.header;
    this.packets++;
    this.bytes += header.payloadOffset + packet.payload.length + header.paddingSize;
    if (this.diverted !== undefined) {
      this.diverted(packet);
      return;
    }
    // As received (header and payload, padding dropped): what each viewer is sent, before its own SRTP.
    const viewerSize = header.payloadOffset + packet.payload.length;
    // Padding-only packets are the publisher's bandwidth probes toward us, meaningless downstream:
    // they are dropped and what follows is renumbered, so viewers see no gap to NACK.
    // Padding on media packets is dropped since werift's send path would not re-append it.
    if (header.padding) {
      header.padding = false;
      header.paddingSize = 0;
    }
    if (packet.payload.length === 0) {
      this.sequence.drop(header.sequenceNumber);
      return;
    }
    header.sequenceNumber = this.sequence.map(header.sequenceNumber);
    this.history.put(packet);
    // The publisher's extensions use the publisher's ids: the history keeps the forwarded ones,
    // which each viewer's sender writes under its own ids; the originals do not travel on.
    if (header.extension) {
      header.extensions = [];
      header.extension = false;
    }
    let keyframe = -1;
    if (this.gopCachePackets > 0) {
      keyframe = startsKeyframe(this.codec, packet.payload) ? 1 : 0;
      const ts = header.timestamp;
      // A keyframe may start with several "starting" packets (H.264 SPS, then the IDR): one GOP.
      if (keyframe === 1 && ts !== this.gopTimestamp) {
        this.gop = [packet];
        this.gopTimestamp = ts;
      } else if (this.gop.length > 0) {
        if (this.gop.length < this.gopCachePackets) this.gop.push(packet);
        else this.gop = []; // too long a GOP to keep: joiners fall back to waiting
      }
    }
    // Outputs is replaced, never mutated, so adding or removing a sink mid-loop is safe.
    const outputs = this.outputs;
    for (let i = 0; i < outputs.length; i++) {
      const out = outputs[i];
      if (out.waiting) {
        if (keyframe < 0) keyframe = startsKeyframe(this.codec, packet.payload) ? 1 : 0;
        if (keyframe === 0) continue;
        out.waiting = false;
      }
      out.sink.write(packet);
      if (out.viewer) {
        this.viewerPackets++;
        this.viewerBytes += viewerSize;
      }
    }
    const batches = this.batches;
    for (let i = 0; i < batches.length; i++) batches[i]!.flush();
  }

  close(): void {
    this.diverted = undefined;
    this.outputs = [];
    this.batches = [];
    this.gop = [];
    this.history.close();
  }
}

function batchesOf(outputs: readonly Output[]): PacketBatch[] {
  const batches: PacketBatch[] = [];
  for (const o of outputs) if (o.sink.batch && !batches.includes(o.sink.batch)) batches.push(o.sink.batch);
  return batches;
}
