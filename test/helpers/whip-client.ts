// A WHIP publisher on werift, fed with FFmpeg's RTP: two loopback UDP sockets receive the
// encoder's packets and write them into sendonly MediaStreamTracks. It counts the keyframe
// requests (PLI, FIR) and NACKs the server sends back.
import type dgram from "node:dgram";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RTCRtpHeaderExtensionParameters,
  RtcpPayloadSpecificFeedback,
  RtpPacket,
  useAbsSendTime,
  useSdesMid,
  type PeerConfig,
  type RTCRtpSender,
} from "werift";
import {
  h264ProfileLevelId,
  startFfmpegSource,
  type FfmpegSource,
  type FfmpegSourceOptions,
  type H264Profile,
  type SourceVideoCodec,
} from "./ffmpeg-source.js";
import { deleteSession, postSdp, SdpStatusError, type SdpRequestOptions, type SdpResponse } from "./http.js";
import { bindUdp, closeUdp, loopbackPeerConfig, udpPort, waitFor } from "./net.js";

// ---- werift plumbing shared with whep-client -------------------------------------------------

export const VIDEO_RTCP_FEEDBACK = [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "ccm", parameter: "fir" }, { type: "goog-remb" }];

export interface VideoCodecSpec {
  codec: "VP8" | "VP9" | "H264" | "AV1";
  /** H.264: profile-level-id, default 42e01f. */
  profileLevelId?: string;
  /** H.264: packetization-mode, default 1. */
  packetizationMode?: 0 | 1;
  /** VP9: profile-id, default 0. */
  profileId?: number;
  payloadType?: number;
}

/** werift codec parameters for one video codec, with browser-like feedback and fmtp. */
export function videoCodecParameters(spec: VideoCodecSpec | VideoCodecSpec["codec"]): RTCRtpCodecParameters {
  const s = typeof spec === "string" ? { codec: spec } : spec;
  let parameters: string | undefined;
  if (s.codec === "H264") {
    // The encoding name must be "H264" in upper case, or Chrome sends nothing.
    parameters =
      `profile-level-id=${(s.profileLevelId ?? "42e01f").toLowerCase()};` + `packetization-mode=${s.packetizationMode ?? 1};level-asymmetry-allowed=1`;
  } else if (s.codec === "VP9") {
    parameters = `profile-id=${s.profileId ?? 0}`;
  }
  return new RTCRtpCodecParameters({
    mimeType: `video/${s.codec}`,
    clockRate: 90000,
    rtcpFeedback: VIDEO_RTCP_FEEDBACK.map((f) => ({ ...f })),
    parameters,
    ...(s.payloadType !== undefined ? { payloadType: s.payloadType } : {}),
  });
}

export function opusCodecParameters(payloadType?: number): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "audio/opus",
    clockRate: 48000,
    channels: 2,
    parameters: "minptime=10;useinbandfec=1",
    ...(payloadType !== undefined ? { payloadType } : {}),
  });
}

/** Header extensions a browser would offer (mid and abs-send-time). */
export function browserLikeHeaderExtensions(): PeerConfig["headerExtensions"] {
  return { video: [useSdesMid(), useAbsSendTime()], audio: [useSdesMid(), useAbsSendTime()] };
}

/** createOffer + setLocalDescription, then waits for ICE gathering so the SDP holds every candidate. */
export async function gatherOffer(pc: RTCPeerConnection, timeoutMs = 5000): Promise<string> {
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathered(pc, timeoutMs);
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new Error("werift produced no local description");
  return sdp;
}

export async function waitGathered(pc: RTCPeerConnection, timeoutMs = 5000): Promise<void> {
  if (pc.iceGatheringState === "complete") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ICE gathering not complete after ${timeoutMs} ms (${pc.iceGatheringState})`)), timeoutMs);
    const sub = pc.iceGatheringStateChange.subscribe((state) => {
      if (state === "complete") {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      }
    });
  });
}

/** Resolves when the peer is connected (ICE + DTLS); rejects on failed/closed or after timeoutMs. */
export async function waitConnected(pc: RTCPeerConnection, timeoutMs = 10_000): Promise<void> {
  if (pc.connectionState === "connected") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unSubscribe();
      reject(new Error(`peer not connected after ${timeoutMs} ms (connection ${pc.connectionState}, ICE ${pc.iceConnectionState})`));
    }, timeoutMs);
    const sub = pc.connectionStateChange.subscribe((state) => {
      if (state === "connected") {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      } else if (state === "failed" || state === "closed") {
        clearTimeout(timer);
        sub.unSubscribe();
        reject(new Error(`peer connection ${state} before connecting`));
      }
    });
  });
}

/** RFC 5761: RTCP packet types 192–223 sit where RTP would carry marker+payload type. */
export function isRtcp(buf: Buffer): boolean {
  return buf.length >= 2 && buf[1]! >= 192 && buf[1]! <= 223;
}

// ---- the publisher ----------------------------------------------------------------------------

export interface WhipVideoOptions {
  /** AV1: FFmpeg cannot packetize it; feed the port with test/helpers/av1-source.ts instead of startSource(). */
  codec: SourceVideoCodec | "AV1";
  /** H.264: x264 profile the source encodes with (default baseline). */
  h264Profile?: H264Profile;
  /** H.264 level, default "3.1". */
  h264Level?: string;
  /** H.264: profile-level-id to advertise instead of the one derived from h264Profile/h264Level. */
  profileLevelId?: string;
  /** VP9: profile the source encodes and the offer announces (profile-id), default 0; 2 is 10-bit. */
  vp9Profile?: 0 | 2;
  /**
   * After every this many video packets, an empty packet in the media's own sequence space, as
   * Chrome's padding-only bandwidth probes are when the publisher has no RTX (default: none).
   */
  paddingEvery?: number;
  /** Offer RTX (RFC 4588, PT 97 apt=96) and resend NACKed packets as RTX, as browsers do. */
  rtx?: boolean;
}

export interface WhipClientOptions {
  /** Default { codec: "VP8" }; false = no video track. */
  video?: WhipVideoOptions | false;
  /** Default true. */
  audio?: boolean;
  /** Merged over the loopback ICE settings. */
  peerConfig?: Partial<PeerConfig>;
  connectTimeoutMs?: number;
  /**
   * Offer RFC 6464 audio level (after mid and abs-send-time, so id 3) and stamp every Opus packet
   * with it, the level byte being `audioLevelOf(sequenceNumber)`, as browsers do for each packet.
   */
  audioLevel?: boolean;
}

export const AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/** The audio-level byte a WhipClient with `audioLevel` stamps on a packet: voice flag and a level cycling 0..126. */
export function audioLevelOf(sequenceNumber: number): number {
  return 0x80 | (sequenceNumber % 127);
}

export interface PublishOptions extends SdpRequestOptions {
  /** Wait for ICE+DTLS after applying the answer (default true). */
  waitConnected?: boolean;
}

export interface PublishResult {
  status: number;
  /** Absolute URL of the session resource. */
  location: string;
  etag?: string;
  answer: string;
  response: SdpResponse;
}

/** Extra source settings for startSource(); codec and ports come from the client. */
export type SourceSettings = Omit<NonNullable<FfmpegSourceOptions["video"]>, "port" | "codec" | "h264Profile" | "h264Level" | "vp9Profile"> & {
  audioFrequency?: number;
  audioBitrateKbps?: number;
  durationSeconds?: number;
};

interface Outbound {
  kind: "video" | "audio";
  socket: dgram.Socket;
  track: MediaStreamTrack;
  sender: RTCRtpSender;
}

/**
 * A packet with no payload after `after`, standing for a padding-only probe: werift's SRTP cannot
 * send RTP padding (it keeps the P bit but drops the padding bytes), and once parsed, Chrome's
 * probe is exactly this to the server, a packet in the sequence space with nothing to forward.
 */
function paddingProbe(after: Buffer, seq: number): Buffer {
  const probe = Buffer.alloc(12);
  probe[0] = 0x80; // V=2, no padding, extension or CSRC
  probe[1] = after[1]! & 0x7f; // same payload type, no marker
  probe.writeUInt16BE(seq, 2);
  after.copy(probe, 4, 4, 12); // timestamp and SSRC of the packet before it
  return probe;
}

export class WhipClient {
  readonly pc: RTCPeerConnection;
  readonly video?: WhipVideoOptions & { profileLevelId?: string };
  readonly audio: boolean;
  /** PLIs the server sent us (RTCP PSFB FMT 1). */
  plis = 0;
  /** FIRs the server sent us (RTCP PSFB FMT 4). */
  firs = 0;
  /** Generic NACK packets the server sent us. */
  nacks = 0;
  /** Padding-only packets sent (WhipVideoOptions.paddingEvery). */
  paddingSent = 0;
  /** RTP packets / RTCP packets FFmpeg delivered to the sockets, per kind. */
  readonly rtpIn = { video: 0, audio: 0 };
  readonly rtcpIn = { video: 0, audio: 0 };
  /** Set after a 201. */
  location?: string;
  etag?: string;
  answer?: string;
  source?: FfmpegSource;
  /** performance.now() when each PLI/FIR arrived. */
  readonly keyframeRequestTimes: number[] = [];
  /** Status of the DELETE sent by close(), if one was sent. */
  deleteStatus?: number;
  /** Set when FFmpeg ended on its own (not through close()): how, and the tail of its stderr. */
  sourceFailure?: string;

  private readonly outbound: Outbound[] = [];
  private readonly listeners = new Set<(type: "pli" | "fir") => void>();
  private offer?: Promise<string>;
  private requestOpts: SdpRequestOptions = {};
  private closing?: Promise<void>;
  private readonly connectTimeoutMs: number;
  /** Set with WhipClientOptions.audioLevel; werift numbers it when the peer is made. */
  private readonly audioLevelExtension?: RTCRtpHeaderExtensionParameters;

  private constructor(opts: WhipClientOptions) {
    const v = opts.video === undefined ? { codec: "VP8" as const } : opts.video === false ? undefined : opts.video;
    this.video =
      v && v.codec === "H264"
        ? {
            ...v,
            h264Profile: v.h264Profile ?? "baseline",
            profileLevelId: v.profileLevelId ?? h264ProfileLevelId(v.h264Profile ?? "baseline", v.h264Level ?? "3.1"),
          }
        : v;
    this.audio = opts.audio ?? true;
    if (!this.video && !this.audio) throw new Error("a WHIP client needs video, audio or both");
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const headerExtensions = browserLikeHeaderExtensions();
    if (opts.audioLevel) {
      this.audioLevelExtension = new RTCRtpHeaderExtensionParameters({ uri: AUDIO_LEVEL_URI });
      headerExtensions.audio = [...(headerExtensions.audio ?? []), this.audioLevelExtension];
    }
    this.pc = new RTCPeerConnection({
      bundlePolicy: "max-bundle",
      headerExtensions,
      codecs: {
        video: this.video
          ? [
              videoCodecParameters({
                codec: this.video.codec,
                profileLevelId: this.video.profileLevelId,
                profileId: this.video.vp9Profile,
                ...(this.video.rtx ? { payloadType: 96 } : {}),
              }),
              ...(this.video.rtx ? [new RTCRtpCodecParameters({ mimeType: "video/rtx", clockRate: 90000, payloadType: 97, parameters: "apt=96" })] : []),
            ]
          : [],
        audio: this.audio ? [opusCodecParameters()] : [],
      },
      ...loopbackPeerConfig(),
      ...opts.peerConfig,
    });
  }

  /** Creates the peer and binds one loopback UDP socket per track for FFmpeg's RTP. */
  static async create(opts: WhipClientOptions = {}): Promise<WhipClient> {
    const client = new WhipClient(opts);
    try {
      if (client.video) await client.addOutbound("video");
      if (client.audio) await client.addOutbound("audio");
    } catch (err) {
      await client.close({ vanish: true });
      throw err;
    }
    return client;
  }

  private async addOutbound(kind: "video" | "audio"): Promise<void> {
    const socket = await bindUdp(0);
    const track = new MediaStreamTrack({ kind });
    const transceiver = this.pc.addTransceiver(track, { direction: "sendonly" });
    const sender = transceiver.sender;
    const paddingEvery = kind === "video" ? (this.video?.paddingEvery ?? 0) : 0;
    socket.on("message", (msg) => {
      if (isRtcp(msg)) {
        this.rtcpIn[kind]++;
        return;
      }
      if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
      this.rtpIn[kind]++;
      const level = kind === "audio" ? this.audioLevelExtension : undefined;
      if (level) {
        // werift's sender keeps extensions a packet already carries next to its own.
        const packet = RtpPacket.deSerialize(msg);
        packet.header.extension = true;
        packet.header.extensions.push({ id: level.id, payload: Buffer.from([audioLevelOf(packet.header.sequenceNumber)]) });
        track.writeRtp(packet);
        return;
      }
      if (paddingEvery === 0) {
        track.writeRtp(msg);
        return;
      }
      // Each probe takes the next sequence number, so FFmpeg's later packets move up by one.
      const seq = (msg.readUInt16BE(2) + this.paddingSent) & 0xffff;
      msg.writeUInt16BE(seq, 2);
      track.writeRtp(msg);
      if (this.rtpIn[kind] % paddingEvery === 0) {
        track.writeRtp(paddingProbe(msg, (seq + 1) & 0xffff));
        this.paddingSent++;
      }
    });
    sender.onPictureLossIndication.subscribe(() => this.keyframeRequested("pli"));
    sender.onRtcp.subscribe((rtcp) => {
      // werift surfaces PLI (above) but not FIR: catch PSFB FMT 4 here.
      if (rtcp instanceof RtcpPayloadSpecificFeedback && rtcp.feedback.count === 4) this.keyframeRequested("fir");
    });
    sender.onGenericNack.subscribe(() => this.nacks++);
    this.outbound.push({ kind, socket, track, sender });
  }

  private keyframeRequested(type: "pli" | "fir"): void {
    if (type === "pli") this.plis++;
    else this.firs++;
    this.keyframeRequestTimes.push(performance.now());
    for (const l of this.listeners) l(type);
  }

  /** PLIs + FIRs received. */
  get keyframeRequests(): number {
    return this.plis + this.firs;
  }

  /** Called on every PLI/FIR; returns an unsubscribe function. */
  onKeyframeRequest(listener: (type: "pli" | "fir") => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Port FFmpeg must send this kind's RTP to (127.0.0.1). */
  port(kind: "video" | "audio"): number {
    const o = this.outbound.find((x) => x.kind === kind);
    if (!o) throw new Error(`this client has no ${kind} track`);
    return udpPort(o.socket);
  }

  get videoPort(): number | undefined {
    return this.video ? this.port("video") : undefined;
  }

  get audioPort(): number | undefined {
    return this.audio ? this.port("audio") : undefined;
  }

  sender(kind: "video" | "audio"): RTCRtpSender | undefined {
    return this.outbound.find((x) => x.kind === kind)?.sender;
  }

  /**
   * Starts FFmpeg sending this client's codecs to its sockets (one source per client; it is
   * killed by close()).
   */
  startSource(settings: SourceSettings = {}): FfmpegSource {
    if (this.source) throw new Error("source already started");
    if (this.closing) throw new Error("client is closed");
    const { audioFrequency, audioBitrateKbps, durationSeconds, ...video } = settings;
    const codec = this.video?.codec;
    if (codec === "AV1") throw new Error('FFmpeg has no AV1 RTP packetizer: feed port("video") with test/helpers/av1-source.ts');
    const source = startFfmpegSource({
      durationSeconds,
      video:
        this.video && codec
          ? {
              ...video,
              port: this.port("video"),
              codec,
              h264Profile: this.video.h264Profile,
              h264Level: this.video.h264Level,
              vp9Profile: this.video.vp9Profile,
            }
          : undefined,
      audio: this.audio ? { port: this.port("audio"), frequency: audioFrequency, bitrateKbps: audioBitrateKbps } : undefined,
    });
    this.source = source;
    void source.exited.then((e) => {
      if (this.closing || durationSeconds !== undefined) return;
      const how = e.signal ? `killed by ${e.signal}` : `exited with ${e.code}`;
      this.sourceFailure = `FFmpeg (pid ${source.pid}) ${how}: ${source.stderr().trim().slice(-1000) || "no stderr"}`;
    });
    return source;
  }

  /** The offer with every candidate inline; created once and reused for every POST. */
  createOffer(): Promise<string> {
    return (this.offer ??= gatherOffer(this.pc));
  }

  /** POSTs the offer and returns the raw response without applying it (for error-status tests). */
  async postOffer(url: string, opts: SdpRequestOptions = {}): Promise<SdpResponse> {
    return postSdp(url, await this.createOffer(), opts);
  }

  /**
   * POSTs the offer, expects 201 (throws SdpStatusError otherwise), applies the answer and waits
   * until ICE and DTLS are up.
   */
  async publish(url: string, opts: PublishOptions = {}): Promise<PublishResult> {
    const response = await this.postOffer(url, opts);
    if (response.status !== 201) throw new SdpStatusError(url, response);
    if (!response.location) throw new Error(`POST ${url} answered 201 without a Location header`);
    this.requestOpts = { token: opts.token, tokenHeader: opts.tokenHeader, headers: opts.headers };
    this.location = response.location;
    this.etag = response.etag;
    this.answer = response.body;
    await this.pc.setRemoteDescription({ type: "answer", sdp: response.body });
    if (opts.waitConnected !== false) await waitConnected(this.pc, this.connectTimeoutMs);
    return { status: response.status, location: response.location, etag: response.etag, answer: response.body, response };
  }

  /** Waits until at least `count` PLI/FIR have arrived. */
  waitForKeyframeRequests(count = 1, timeoutMs = 5000): Promise<void> {
    return waitFor(() => this.keyframeRequests >= count, {
      timeoutMs,
      what: `${count} keyframe request(s)`,
      describe: () => `plis=${this.plis} firs=${this.firs}${this.sourceFailure ? `; ${this.sourceFailure}` : ""}`,
    });
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * DELETEs the session (unless `vanish`: then the peer just goes silent, like a killed browser),
   * stops FFmpeg, closes the peer and the sockets. Idempotent; never throws.
   */
  close(opts: { vanish?: boolean } = {}): Promise<void> {
    return (this.closing ??= this.doClose(opts.vanish ?? false));
  }

  private async doClose(vanish: boolean): Promise<void> {
    if (!vanish && this.location) {
      this.deleteStatus = await deleteSession(this.location, this.requestOpts).catch(() => undefined);
    }
    await Promise.allSettled([
      this.source?.close(),
      this.pc.close(),
      ...this.outbound.map((o) => {
        o.socket.removeAllListeners("message");
        o.track.stop();
        return closeUdp(o.socket);
      }),
    ]);
    this.listeners.clear();
  }
}

export interface PublishTestStreamOptions extends WhipClientOptions, PublishOptions {
  source?: SourceSettings;
}

/**
 * The usual e2e start: a client, FFmpeg feeding it, published at `url`. The source starts
 * before the POST so media is flowing when the connection comes up. On failure everything
 * opened is closed before the error is rethrown.
 */
export async function publishTestStream(url: string, opts: PublishTestStreamOptions = {}): Promise<{ client: WhipClient; result: PublishResult }> {
  const client = await WhipClient.create(opts);
  try {
    client.startSource(opts.source);
    const result = await client.publish(url, opts);
    return { client, result };
  } catch (err) {
    await client.close({ vanish: true });
    throw err;
  }
}
