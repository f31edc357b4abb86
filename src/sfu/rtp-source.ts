// A room's publisher that is not a WebRTC peer: plain RTP arriving on loopback UDP ports (FFmpeg
// ingesting RTMP/HLS/files). Subscribers, recorders and bridges see it as any publisher.
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

export class RtpSource {
  readonly id = newSessionId();
  readonly tracks: PublishedTrack[];
  private readonly sockets: dgram.Socket[] = [];
  private closing: Promise<void> | undefined;
  private readonly endListeners: ((reason: EndReason) => void)[] = [];
  /** Ports FFmpeg must send each track to, in the order of `tracks`. */
  readonly ports: number[] = [];

  private constructor(
    specs: RtpTrackSpec[],
    gopCachePackets: number,
  ) {
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
