// A room's publisher that is not a WebRTC peer: plain RTP arriving on loopback UDP ports (FFmpeg
// ingesting RTMP/HLS/files). Subscribers, recorders and bridges see it as any publisher. One source
// outlives the FFmpeg runs feeding it (a restart after a crash, a relay's next list): each run's
// RTP is spliced onto the same tracks, numbered on from the last packet and timestamped by the
// time that has passed, so a viewer's decoder sees one stream (docs/media.md, "Sources fed by FFmpeg").
import dgram from "node:dgram";
import { RtpPacket } from "werift";
import { TrackFanout } from "./forward.js";
import { KeyframeRequester } from "./keyframes.js";
import type { PublishedTrack } from "./publisher.js";
import { canonicalName } from "../media/codecs.js";
import type { MediaKind, SdpCodec } from "./sdp.js";
import { newSessionId, type EndReason } from "./session.js";

export interface RtpTrackSpec {
  kind: MediaKind;
  codec: SdpCodec;
}

/** The least a spliced timestamp advances (ms): a run that starts at once still gets a new frame time. */
const MIN_SPLICE_MS = 10;

/**
 * One track's numbering across FFmpeg runs: sequence numbers and timestamps are shifted by the
 * offsets fixed at the first packet of each run. On the forwarding path: no allocation per packet.
 */
export class RunSplice {
  private seqOffset = 0;
  private tsOffset = 0;
  private lastSeq = -1;
  private lastTs = 0;
  private lastAt = 0;
  private ssrc = -1;
  private fresh = false;

  constructor(private readonly clockRate: number) {}

  /** The next packet comes from a new run: it continues where the last one left off. */
  restarted(): void {
    this.fresh = this.lastSeq >= 0;
  }

  /** Rewrites a packet's SSRC, sequence number and timestamp in place. */
  rewrite(packet: RtpPacket, now: number): void {
    const h = packet.header;
    if (this.fresh) {
      this.fresh = false;
      const ticks = Math.round((Math.max(now - this.lastAt, MIN_SPLICE_MS) * this.clockRate) / 1000);
      this.seqOffset = (this.lastSeq + 1 - h.sequenceNumber) & 0xffff;
      this.tsOffset = (this.lastTs + ticks - h.timestamp) >>> 0;
    }
    if (this.ssrc < 0) this.ssrc = h.ssrc;
    h.ssrc = this.ssrc;
    h.sequenceNumber = (h.sequenceNumber + this.seqOffset) & 0xffff;
    h.timestamp = (h.timestamp + this.tsOffset) >>> 0;
    this.lastSeq = h.sequenceNumber;
    this.lastTs = h.timestamp;
    this.lastAt = now;
  }
}

export class RtpSource {
  readonly id = newSessionId();
  readonly tracks: PublishedTrack[];
  private readonly sockets: dgram.Socket[] = [];
  private closing: Promise<void> | undefined;
  private readonly endListeners: ((reason: EndReason) => void)[] = [];
  private readonly splices: RunSplice[] = [];
  /** Ports FFmpeg must send each track to, in the order of `tracks`. */
  readonly ports: number[] = [];

  private constructor(specs: RtpTrackSpec[], gopCachePackets: number) {
    const counts = { audio: 0, video: 0 };
    this.tracks = specs.map((s) => {
      const name = canonicalName(s.codec.name);
      if (!name) throw new Error(`cannot forward ${s.codec.name}`);
      // The encoder behind plain RTP cannot be asked for a keyframe: joiners get the GOP cache.
      const keyframes = new KeyframeRequester(() => undefined);
      return {
        kind: s.kind,
        codecName: name,
        codec: s.codec,
        index: counts[s.kind]++,
        fanout: new TrackFanout(s.kind, name, () => keyframes.request(), gopCachePackets),
        keyframes,
      };
    });
  }

  /** Binds one loopback UDP socket per track; the RTP that arrives there is forwarded. */
  static async open(specs: RtpTrackSpec[], gopCachePackets = 0): Promise<RtpSource> {
    const source = new RtpSource(specs, gopCachePackets);
    try {
      for (const track of source.tracks) {
        const socket = dgram.createSocket("udp4");
        source.sockets.push(socket);
        await new Promise<void>((resolve, reject) => {
          socket.once("error", reject);
          socket.bind(0, "127.0.0.1", () => {
            socket.off("error", reject);
            resolve();
          });
        });
        source.ports.push(socket.address().port);
        const pt = track.codec.payloadType;
        const fanout = track.fanout;
        const splice = new RunSplice(track.codec.clockRate);
        source.splices.push(splice);
        socket.on("message", (msg) => {
          // RTCP (payload types 200-204 in the second byte) shares the port when FFmpeg muxes it.
          if (msg.length < 12 || (msg[1] >= 200 && msg[1] <= 204)) return;
          let packet: RtpPacket;
          try {
            packet = RtpPacket.deSerialize(msg);
          } catch {
            return;
          }
          if (packet.header.payloadType !== pt) return;
          splice.rewrite(packet, performance.now());
          fanout.forward(packet);
        });
        socket.on("error", () => undefined);
      }
    } catch (err) {
      await source.close("error");
      throw err;
    }
    return source;
  }

  /** A new FFmpeg run is about to send: its packets continue the stream the last run sent. */
  restarted(): void {
    for (const s of this.splices) s.restarted();
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  get packets(): number {
    return this.tracks.reduce((n, t) => n + t.fanout.packets, 0);
  }

  get bytes(): number {
    return this.tracks.reduce((n, t) => n + t.fanout.bytes, 0);
  }

  onEnd(listener: (reason: EndReason) => void): void {
    this.endListeners.push(listener);
  }

  close(reason: EndReason): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      for (const t of this.tracks) {
        t.keyframes.close();
        t.fanout.close();
      }
      await Promise.all(
        this.sockets.map(
          (s) =>
            new Promise<void>((resolve) => {
              try {
                s.close(() => resolve());
              } catch {
                resolve(); // never bound
              }
            }),
        ),
      );
      for (const l of this.endListeners) {
        try {
          l(reason);
        } catch {
          // A listener's failure must not keep the sockets open.
        }
      }
    })();
    return this.closing;
  }
}
