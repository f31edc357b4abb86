import type { MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver } from "werift";
import { errors } from "./errors.js";
import { TrackFanout } from "./forward.js";
import { KeyframeRequester } from "./keyframes.js";
import { agreedExtensions, sourceIndexes } from "./extensions.js";
import { applyOffer, completeAnswer, createPeer, toWeriftCodec, type IceSettings } from "./peer.js";
import { canonicalName, type CodecName } from "../media/codecs.js";
import { FORWARDABLE, narrowOffer, rtxFor, usableMedia, type MediaKind, type ParsedSdp, type SdpCodec, type SdpMedia } from "./sdp.js";
import { PeerSession, type EndReason, type Liveness } from "./session.js";
import { SimulcastSelector } from "./simulcast.js";
import { TwccRecorder } from "./twcc.js";
import { incomingRtp, takeOverTransportFeedback } from "./werift-adapter.js";

/** One track a publisher sends: its negotiated codec and the fan-out every sink hangs on. */
export interface PublishedTrack {
  kind: MediaKind;
  codecName: CodecName;
  /** The codec exactly as negotiated with the publisher (payload type and fmtp of its offer). */
  codec: SdpCodec;
  /** Position among the publisher's tracks of the same kind (names recordings: video0, audio0). */
  index: number;
  fanout: TrackFanout;
  keyframes: KeyframeRequester;
  /** Set when the publisher sends simulcast layers (rids) on this track: one of them is forwarded. */
  simulcast?: SimulcastSelector;
  /** The publisher's extension id → forwarded index, as its history was told (a room's continuity splice reuses it). */
  sourceExtensions?: Uint8Array;
}

interface Choice {
  section: SdpMedia;
  kind: MediaKind;
  codec: SdpCodec;
  codecName: CodecName;
  /**
   * The offer's RTX for the codec, kept where the offer names the RTX SSRC (FID group): werift
   * maps retransmissions to their stream only through it, and cannot for simulcast layers.
   */
  rtx?: SdpCodec;
}

/** Picks, per offered section, the first codec (in the client's order of preference) the SFU forwards. */
function chooseCodecs(offer: ParsedSdp): Choice[] {
  const choices: Choice[] = [];
  for (const section of usableMedia(offer)) {
    if (section.direction === "recvonly" || section.direction === "inactive") continue;
    const kind = section.kind as MediaKind;
    for (const codec of section.codecs) {
      const name = canonicalName(codec.name);
      if (name && FORWARDABLE[kind].includes(name)) {
        const rtx = kind === "video" && section.rtxSsrcGroup && section.rids.length === 0 ? rtxFor(section, codec.payloadType) : undefined;
        choices.push({ section, kind, codec, codecName: name, rtx });
        break;
      }
    }
  }
  return choices;
}

const SDES_MID = "urn:ietf:params:rtp-hdrext:sdes:mid";
const TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/** How often transport-wide feedback goes to the publisher (libwebrtc sends it every 50–100 ms). */
const TWCC_INTERVAL_MS = 50;

/**
 * Sends the publisher transport-wide feedback built by TwccRecorder in place of werift's (see
 * twcc.ts for why). Every packet the router sees is recorded before werift handles it. Returns
 * the function that stops it.
 */
function installTransportFeedback(pc: RTCPeerConnection): () => void {
  const rtp = incomingRtp(pc);
  const id = rtp?.extensionId(TRANSPORT_CC);
  if (!rtp || id === undefined) return () => undefined;
  const feedbackSender = takeOverTransportFeedback(pc);
  if (!feedbackSender) return () => undefined;
  const recorder = new TwccRecorder(Math.floor(Math.random() * 0xffffffff));
  rtp.tap((packet) => {
    const extensions = packet.header.extensions;
    for (let i = 0; i < extensions.length; i++) {
      const e = extensions[i]!;
      if (e.id === id && e.payload.length >= 2) {
        recorder.record(e.payload.readUInt16BE(0), performance.now() * 1000, packet.header.ssrc);
        break;
      }
    }
  });
  let fbCount = 0;
  const timer = setInterval(() => {
    const send = feedbackSender();
    if (!send) return;
    for (let feedback = recorder.build(fbCount); feedback; feedback = recorder.build(fbCount)) {
      fbCount = (fbCount + 1) & 0xff;
      send(feedback);
    }
  }, TWCC_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** The transceiver werift made for a chosen section (matched by mid). */
function transceiverOf(pc: RTCPeerConnection, c: Choice): RTCRtpTransceiver | undefined {
  return pc.getTransceivers().find((t) => t.mid !== undefined && t.mid === c.section.mid);
}

/**
 * werift routes incoming RTP by the SSRCs the offer declares (a=ssrc) or by rid, never by mid or
 * payload type: a section without a=ssrc (clients that leave it out, and every simulcast offer
 * once its rid lines are stripped) would have all its packets dropped. So a packet whose SSRC is
 * unknown is matched to a chosen section that has no SSRC yet, by its mid header extension or
 * else by its payload type (one per section after narrowing), and the SSRC is registered with
 * werift's router and receiver as if the offer had declared it. Only the first SSRC per section is
 * taken: two streams interleaved on one track would corrupt it.
 */
function learnUndeclaredSsrcs(pc: RTCPeerConnection, choices: Choice[]): void {
  const rtp = incomingRtp(pc);
  if (!rtp) return;
  const open = choices
    .map((c) => ({ choice: c, transceiver: transceiverOf(pc, c) }))
    .filter((x): x is { choice: Choice; transceiver: RTCRtpTransceiver } => !!x.transceiver)
    .filter((x) => Object.keys(x.transceiver.receiver.trackBySSRC).length === 0)
    // Simulcast layers are routed by werift itself, by their rid.
    .filter((x) => x.choice.section.rids.length === 0);
  if (open.length === 0) return;
  rtp.tap((packet) => {
    const ssrc = packet.header.ssrc;
    if (open.length === 0 || rtp.isRouted(ssrc)) return;
    const midId = rtp.extensionId(SDES_MID);
    const midExt = midId === undefined ? undefined : packet.header.extensions.find((e) => e.id === midId);
    const mid = midExt?.payload.toString();
    const byPt = open.filter((x) => x.choice.codec.payloadType === packet.header.payloadType);
    const found = mid !== undefined ? open.find((x) => x.transceiver.mid === mid) : byPt.length === 1 ? byPt[0] : undefined;
    if (found && found.choice.codec.payloadType === packet.header.payloadType) {
      open.splice(open.indexOf(found), 1);
      rtp.routeTo(ssrc, found.transceiver.receiver);
    }
  });
}

export interface PublisherOptions {
  ice: IceSettings;
  liveness: Liveness;
  /** Given when the id was needed before the peer existed. */
  id?: string;
  /** Video packets kept from the last keyframe for joiners (0 = off); see TrackFanout. */
  gopCachePackets?: number;
}

export class Publisher extends PeerSession {
  readonly tracks: PublishedTrack[];

  private constructor(handle: ReturnType<typeof createPeer>, opts: PublisherOptions, choices: Choice[]) {
    super(handle, opts.liveness, opts.id);
    const counts = { audio: 0, video: 0 };
    this.tracks = choices.map((c) => {
      const keyframes = new KeyframeRequester(() => this.sendKeyframeRequest(c.kind));
      const fanout = new TrackFanout(c.kind, c.codecName, () => keyframes.request(), opts.gopCachePackets);
      const simulcast =
        c.kind === "video" && c.section.rids.length > 1
          ? new SimulcastSelector(
              c.codecName,
              c.codec.clockRate,
              (packet) => fanout.forward(packet),
              () => keyframes.request(),
            )
          : undefined;
      return { kind: c.kind, codecName: c.codecName, codec: c.codec, index: counts[c.kind]++, fanout, keyframes, simulcast };
    });
  }

  /** Validates the offer, answers it, and returns a publisher whose tracks start forwarding when media arrives. */
  static async create(offer: ParsedSdp, opts: PublisherOptions): Promise<{ publisher: Publisher; answer: string }> {
    const { ice } = opts;
    const choices = chooseCodecs(offer);
    if (choices.length === 0) {
      throw errors.unsupportedCodec("no supported codec in offer: the server forwards VP8, VP9, H264, AV1 and opus");
    }
    if (choices.filter((c) => c.kind === "video").length > 1 || choices.filter((c) => c.kind === "audio").length > 1) {
      throw errors.invalidSdp();
    }
    const handle = createPeer(
      ice,
      {
        video: choices.filter((c) => c.kind === "video").flatMap((c) => [toWeriftCodec("video", c.codec), ...(c.rtx ? [toWeriftCodec("video", c.rtx)] : [])]),
        audio: choices.filter((c) => c.kind === "audio").map((c) => toWeriftCodec("audio", c.codec)),
      },
      { simulcast: choices.some((c) => c.section.rids.length > 0) },
    );
    const publisher = new Publisher(handle, opts, choices);
    // onTrack fires inside setRemoteDescription: wire it first.
    handle.pc.onTrack.subscribe((track) => publisher.attachTrack(track));
    try {
      const narrowed = narrowOffer(offer, new Map(choices.map((c) => [c.section, [c.codec.payloadType, ...(c.rtx ? [c.rtx.payloadType] : [])]])));
      await applyOffer(handle.pc, narrowed);
      learnUndeclaredSsrcs(handle.pc, choices);
      publisher.readExtensionIds(offer, choices);
      publisher.stopFeedback = installTransportFeedback(handle.pc);
      const answer = await completeAnswer(handle.pc, ice);
      return { publisher, answer };
    } catch (err) {
      await publisher.close("error");
      throw err;
    }
  }

  private stopFeedback = (): void => undefined;

  /** Tells each track's history which of the publisher's extension ids it forwards. */
  private readExtensionIds(offer: ParsedSdp, choices: Choice[]): void {
    choices.forEach((c, i) => {
      const transceiver = transceiverOf(this.peer.pc, c);
      if (!transceiver) return;
      const agreed = agreedExtensions(transceiver.headerExtensions, offer.lines.slice(c.section.start, c.section.end));
      const track = this.tracks[i]!;
      track.sourceExtensions = sourceIndexes(agreed);
      track.fanout.history.setSourceExtensions(track.sourceExtensions);
    });
  }
  private readonly inbound = new Map<MediaKind, { track: MediaStreamTrack; transceiver: RTCRtpTransceiver | undefined }>();

  private attachTrack(track: MediaStreamTrack): void {
    const published = this.tracks.find((t) => t.kind === track.kind);
    if (!published) return;
    // A section without a=ssrc gets the receiver's default track, which is not in receiver.tracks.
    const transceiver = this.peer.pc.getTransceivers().find((t) => t.receiver.tracks.includes(track) || t.receiver.track === track);
    const selector = published.simulcast;
    if (selector && track.rid && transceiver) {
      // werift has a track per rid but announces only the first: the selector takes them all.
      if (this.inbound.has(published.kind)) return;
      this.inbound.set(published.kind, { track, transceiver });
      for (const layerTrack of transceiver.receiver.tracks) {
        if (!layerTrack.rid) continue;
        const layer = selector.addLayer(layerTrack.rid);
        layerTrack.onReceiveRtp.subscribe((packet) => selector.write(layer, packet));
      }
      return;
    }
    if (this.inbound.has(published.kind)) return;
    this.inbound.set(published.kind, { track, transceiver });
    const fanout = published.fanout;
    track.onReceiveRtp.subscribe((packet) => fanout.forward(packet));
  }

  private sendKeyframeRequest(kind: MediaKind): void {
    const inbound = this.inbound.get(kind);
    const receiver = inbound?.transceiver?.receiver;
    if (!receiver) return;
    const selector = this.tracks.find((t) => t.kind === kind)?.simulcast;
    const ssrcs = selector ? selector.keyframeSsrcs() : inbound.track.ssrc === undefined ? [] : [inbound.track.ssrc];
    // Before the first packet the SSRC is unknown, and the stream's first frame is a keyframe anyway.
    for (const ssrc of ssrcs) receiver.sendRtcpPLI(ssrc).catch(() => undefined);
  }

  get packets(): number {
    return this.tracks.reduce((n, t) => n + t.fanout.packets, 0);
  }

  get bytes(): number {
    return this.tracks.reduce((n, t) => n + t.fanout.bytes, 0);
  }

  protected onConnected(): void {}

  protected release(_reason: EndReason): void {
    this.stopFeedback();
    for (const t of this.tracks) {
      t.keyframes.close();
      t.simulcast?.close();
      t.fanout.close();
    }
  }
}
