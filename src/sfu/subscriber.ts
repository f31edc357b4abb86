import { RtcpPayloadSpecificFeedback, type RTCRtpCodecParameters, type RTCRtpSender, type RtpPacket } from "werift";
import { errors } from "./errors.js";
import { agreedExtensions, targetIds } from "./extensions.js";
import { FastSender, type RemoteOutputs } from "./fast-sender.js";
import type { PacketSink } from "./forward.js";
import { applyOffer, completeAnswer, createPeer, toWeriftCodec, type IceSettings } from "./peer.js";
import type { PublishedTrack } from "./publisher.js";
import { codecMatches, describeCodec, narrowOffer, rtxFor, usableMedia, type ParsedSdp, type SdpCodec, type SdpMedia } from "./sdp.js";
import { PeerSession, type EndReason, type Liveness } from "./session.js";
import type { RoomSource } from "./types.js";

/**
 * werift's own send path as a fan-out sink (FORWARD_PATH=werift): it rewrites SSRC, payload type
 * and extensions itself, at the cost of a clone and a promise per packet. Kept as the reference
 * the fast path is measured and checked against.
 */
class WeriftSenderSink implements PacketSink {
  constructor(private readonly sender: RTCRtpSender) {}

  write(packet: RtpPacket): void {
    this.sender.sendRtp(packet).catch(ignore);
  }

  close(): void {}
}

function ignore(): void {}

const PLI = 1;
const FIR = 4;

interface Match {
  track: PublishedTrack;
  section: SdpMedia;
  codec: SdpCodec;
}

/** For each published track, the subscriber's section and payload type that can carry it, or an unsupported_codec error naming the codec. */
function matchOffer(offer: ParsedSdp, publisher: RoomSource): Match[] {
  const sections = usableMedia(offer).filter((s) => s.direction === "recvonly" || s.direction === "sendrecv");
  const used = new Set<SdpMedia>();
  const matches: Match[] = [];
  const missing: string[] = [];
  for (const track of publisher.tracks) {
    const candidates = sections.filter((s) => s.kind === track.kind && !used.has(s));
    if (candidates.length === 0) continue;
    let found: Match | undefined;
    for (const section of candidates) {
      const codec = section.codecs.find((c) => codecMatches(track.codec, c));
      if (codec) {
        found = { track, section, codec };
        break;
      }
    }
    if (found) {
      used.add(found.section);
      matches.push(found);
    } else {
      missing.push(describeCodec(track.codec));
    }
  }
  if (missing.length > 0 || matches.length === 0) {
    const names = missing.length > 0 ? missing : publisher.tracks.map((t) => describeCodec(t.codec));
    throw errors.unsupportedCodec(`offer cannot receive the publisher's codec: ${names.join(", ")}`);
  }
  return matches;
}

export interface SubscriberOptions {
  ice: IceSettings;
  liveness: Liveness;
  /** Given when the id was needed before the peer existed. */
  id?: string;
  /** "fast" (default): FastSender; "native": FastSender through the native addon; "werift": werift's RTCRtpSender.sendRtp. */
  forwardPath?: "native" | "fast" | "werift";
  /** Fan-out worker processes that send the fast path's packets (FORWARD_WORKERS). */
  workers?: RemoteOutputs;
}

export class Subscriber extends PeerSession {
  private readonly outputs: {
    track: PublishedTrack;
    sender: RTCRtpSender;
    /** Forwarded extension index → this viewer's id, as its offer numbered them. */
    extensionIds: Uint8Array;
    /** Position of its section in the viewer's offer (WHEP events name layers by it). */
    mline: number;
    sink?: PacketSink & { close(): void };
  }[] = [];

  private constructor(
    handle: ReturnType<typeof createPeer>,
    private readonly opts: SubscriberOptions,
  ) {
    super(handle, opts.liveness, opts.id);
  }

  static async create(offer: ParsedSdp, publisher: RoomSource, opts: SubscriberOptions): Promise<{ subscriber: Subscriber; answer: string }> {
    const { ice } = opts;
    const matches = matchOffer(offer, publisher);
    // RTX for the chosen video codec when the viewer offers it: NACKed packets go out as RTX.
    const rtxOf = (m: (typeof matches)[number]) => (m.track.kind === "video" ? rtxFor(m.section, m.codec.payloadType) : undefined);
    const byKind = (kind: string): RTCRtpCodecParameters[] =>
      matches
        .filter((m) => m.track.kind === kind)
        .flatMap((m) => {
          const rtx = rtxOf(m);
          return rtx ? [toWeriftCodec(m.track.kind, m.codec), toWeriftCodec(m.track.kind, rtx)] : [toWeriftCodec(m.track.kind, m.codec)];
        });
    const handle = createPeer(ice, { video: byKind("video"), audio: byKind("audio") });
    const subscriber = new Subscriber(handle, opts);
    try {
      const narrowed = narrowOffer(offer, new Map(matches.map((m) => [m.section, [m.codec.payloadType, ...(rtxOf(m) ? [rtxOf(m)!.payloadType] : [])]])));
      await applyOffer(handle.pc, narrowed);
      const transceivers = handle.pc.getTransceivers();
      for (const m of matches) {
        const transceiver = transceivers.find((t) => t.mid === m.section.mid) ?? transceivers[offer.media.indexOf(m.section)];
        if (!transceiver) throw new Error(`no transceiver for section ${m.section.mid ?? "?"}`);
        transceiver.setDirection("sendonly");
        const agreed = agreedExtensions(transceiver.headerExtensions, offer.lines.slice(m.section.start, m.section.end));
        subscriber.outputs.push({ track: m.track, sender: transceiver.sender, extensionIds: targetIds(agreed), mline: offer.media.indexOf(m.section) });
        transceiver.sender.onRtcp.subscribe((rtcp) => {
          // PSFB FMT 1 is PLI, FMT 4 is FIR (RFC 4585, RFC 5104): both mean "send a keyframe".
          if (rtcp instanceof RtcpPayloadSpecificFeedback && (rtcp.feedback.count === PLI || rtcp.feedback.count === FIR)) {
            m.track.keyframes.requestsFromViewers++;
            m.track.keyframes.request();
          }
        });
      }
      const answer = await completeAnswer(handle.pc, ice);
      return { subscriber, answer };
    } catch (err) {
      await subscriber.close("error");
      throw err;
    }
  }

  /** The room tracks this viewer receives, with the position of each one's section in its offer. */
  get received(): { track: PublishedTrack; mline: number }[] {
    return this.outputs.map((o) => ({ track: o.track, mline: o.mline }));
  }

  /** Forwarding starts once DTLS is up: earlier packets would be dropped, and with them the keyframe. */
  protected onConnected(): void {
    if (this.closed) return;
    for (const o of this.outputs) {
      // The codec and SRTP keys exist only now.
      o.sink =
        this.opts.forwardPath === "werift"
          ? new WeriftSenderSink(o.sender)
          : new FastSender(
              o.sender,
              o.sender.dtlsTransport,
              o.track.fanout.history,
              o.extensionIds,
              this.opts.workers ? { outputs: this.opts.workers, onLost: () => void this.close("error") } : undefined,
              this.opts.forwardPath === "native",
            );
      o.track.fanout.add(o.sink, { viewer: true });
    }
  }

  /**
   * Asks the publisher for a keyframe on this viewer's behalf (its player reports a frozen
   * picture), through the track's throttled KeyframeRequester. False when it receives no video.
   */
  requestKeyframe(): boolean {
    if (this.closed) return false;
    let asked = false;
    for (const o of this.outputs) {
      if (o.track.kind !== "video") continue;
      o.track.keyframes.request();
      asked = true;
    }
    return asked;
  }

  protected release(_reason: EndReason): void {
    for (const o of this.outputs) {
      if (!o.sink) continue;
      o.track.fanout.remove(o.sink);
      o.sink.close();
    }
  }
}
