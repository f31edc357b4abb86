// A WHEP subscriber on werift that counts what arrives per track: packets, bytes, frames,
// keyframes (by looking into the payload), sequence gaps, codec and payload type, and how long
// after the POST the first keyframe came.
import { RTCPeerConnection, RTCRtpCodecParameters, type PeerConfig, type RtpPacket } from "werift";
import { deleteSession, postSdp, SdpStatusError, type SdpRequestOptions, type SdpResponse } from "./http.js";
import { loopbackPeerConfig, waitFor } from "./net.js";
import { browserLikeHeaderExtensions, gatherOffer, opusCodecParameters, videoCodecParameters, waitConnected, type VideoCodecSpec } from "./whip-client.js";

// ---- payload inspection (pure, exported for unit tests) ---------------------------------------

/**
 * VP8 (RFC 7741): true when the packet starts partition 0 of a keyframe — the descriptor's S bit
 * is set with partition index 0, and the P bit (bit 0 of the first VP8 payload byte) is 0.
 */
export function vp8IsKeyframe(payload: Uint8Array): boolean {
  const h = vp8PayloadHeaderOffset(payload);
  if (h === undefined) return false;
  const b0 = payload[0]!;
  const start = (b0 & 0x10) !== 0 && (b0 & 0x07) === 0;
  return start && (payload[h]! & 0x01) === 0;
}

/** Offset of the VP8 payload header after the payload descriptor, or undefined if truncated. */
export function vp8PayloadHeaderOffset(payload: Uint8Array): number | undefined {
  if (payload.length < 1) return undefined;
  let i = 1;
  if (payload[0]! & 0x80) {
    if (payload.length < 2) return undefined;
    const x = payload[1]!;
    i = 2;
    if (x & 0x80) {
      if (payload.length <= i) return undefined;
      i += payload[i]! & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
    }
    if (x & 0x40) i += 1; // TL0PICIDX
    if (x & 0x30) i += 1; // TID/Y/KEYIDX
  }
  return i < payload.length ? i : undefined;
}

/** Width and height from a VP8 keyframe's first packet (RFC 6386 §9.1), or undefined. */
export function vp8KeyframeSize(payload: Uint8Array): { width: number; height: number } | undefined {
  if (!vp8IsKeyframe(payload)) return undefined;
  const h = vp8PayloadHeaderOffset(payload)!;
  if (payload.length < h + 10) return undefined;
  if (payload[h + 3] !== 0x9d || payload[h + 4] !== 0x01 || payload[h + 5] !== 0x2a) return undefined;
  const width = (payload[h + 6]! | (payload[h + 7]! << 8)) & 0x3fff;
  const height = (payload[h + 8]! | (payload[h + 9]! << 8)) & 0x3fff;
  return { width, height };
}

/** VP9 (RFC 9628 descriptor): start of a frame (B) that is not inter-predicted (P = 0). */
export function vp9IsKeyframe(payload: Uint8Array): boolean {
  if (payload.length < 1) return false;
  const b0 = payload[0]!;
  return (b0 & 0x08) !== 0 && (b0 & 0x40) === 0;
}

/** AV1 (RTP payload spec §4.4): N bit of the aggregation header = first packet of a coded video sequence. */
export function av1IsKeyframe(payload: Uint8Array): boolean {
  return payload.length >= 1 && (payload[0]! & 0x08) !== 0;
}

export interface H264Nal {
  type: number;
  /** The whole NAL unit (header included) when the packet holds all of it; FU-A starts hold only a fragment. */
  data: Uint8Array;
  fragment: boolean;
}

/**
 * The NAL units that start in this H.264 packet (RFC 6184): a single NAL unit, each unit of a
 * STAP-A, or the unit an FU-A with the S bit starts. FU-A continuations start none.
 */
export function h264Nals(payload: Uint8Array): H264Nal[] {
  if (payload.length < 1) return [];
  const type = payload[0]! & 0x1f;
  if (type >= 1 && type <= 23) return [{ type, data: payload, fragment: false }];
  if (type === 24) {
    const out: H264Nal[] = [];
    let i = 1;
    while (i + 2 <= payload.length) {
      const size = (payload[i]! << 8) | payload[i + 1]!;
      i += 2;
      if (size === 0 || i + size > payload.length) break;
      out.push({ type: payload[i]! & 0x1f, data: payload.subarray(i, i + size), fragment: false });
      i += size;
    }
    return out;
  }
  if (type === 28 && payload.length >= 2) {
    const fu = payload[1]!;
    if (fu & 0x80) {
      const header = (payload[0]! & 0xe0) | (fu & 0x1f);
      const data = new Uint8Array(payload.length - 1);
      data[0] = header;
      data.set(payload.subarray(2), 1);
      return [{ type: fu & 0x1f, data, fragment: true }];
    }
  }
  return [];
}

/** H.264: the packet starts an IDR slice (5) or carries an SPS (7). */
export function h264IsKeyframe(payload: Uint8Array): boolean {
  return h264Nals(payload).some((n) => n.type === 5 || n.type === 7);
}

/** "42c01f" from an SPS NAL unit (profile_idc, constraint flags, level_idc), or undefined. */
export function h264SpsProfileLevelId(nal: Uint8Array): string | undefined {
  if (nal.length < 4 || (nal[0]! & 0x1f) !== 7) return undefined;
  return Buffer.from(nal.subarray(1, 4)).toString("hex");
}

export type InspectableCodec = "VP8" | "VP9" | "H264" | "AV1" | "OPUS" | string;

/** Whether this packet starts a keyframe, for the codec named (case-insensitive); audio: false. */
export function isKeyframePacket(codec: InspectableCodec, payload: Uint8Array): boolean {
  switch (codec.toUpperCase()) {
    case "VP8":
      return vp8IsKeyframe(payload);
    case "VP9":
      return vp9IsKeyframe(payload);
    case "H264":
      return h264IsKeyframe(payload);
    case "AV1":
      return av1IsKeyframe(payload);
    default:
      return false;
  }
}

// ---- per-track counting -----------------------------------------------------------------------

export interface NegotiatedCodec {
  payloadType: number;
  /** As written in a=rtpmap, e.g. "H264", "VP8", "opus". */
  name: string;
  mimeType: string;
  clockRate: number;
  channels?: number;
  /** a=fmtp value, "" when none. */
  fmtp: string;
}

export interface FrameInfo {
  kind: "video" | "audio";
  timestamp: number;
  keyframe: boolean;
  /** The marker bit closed it (video), as opposed to the next frame's timestamp. */
  complete: boolean;
  packets: number;
  bytes: number;
  /** Index of this frame among the track's frames, from 0. */
  index: number;
  /** performance.now() when its last packet arrived. */
  at: number;
}

export interface TrackStats {
  kind: "video" | "audio";
  packets: number;
  /** RTP payload bytes. */
  bytes: number;
  /** Frames seen so far (closed by marker or by a new timestamp). */
  frames: number;
  keyframes: number;
  /** Decided when the first frame closes; undefined before. */
  firstFrameWasKeyframe?: boolean;
  /** ms from the POST being sent to the first packet / first keyframe packet. */
  firstPacketMs?: number;
  firstKeyframeMs?: number;
  /** Sequence numbers skipped (each missing number counts one). */
  sequenceGaps: number;
  /** Packets older than the newest one seen (late or retransmitted). */
  reordered: number;
  duplicates: number;
  ssrc?: number;
  /** Payload type of the latest packet, and every one seen. */
  payloadType?: number;
  payloadTypes: number[];
  /** Codec of the latest packet, from the answer's a=rtpmap for its payload type. */
  codec?: NegotiatedCodec;
  /** H.264: profile-level-id in the first SPS received (in-band, what the encoder really made). */
  spsProfileLevelId?: string;
  /** VP8: size in the first keyframe. */
  width?: number;
  height?: number;
  /** VP8: size in the latest keyframe (changes when a simulcast layer is switched). */
  latestSize?: { width: number; height: number };
  /** performance.now() of the latest packet. */
  lastPacketAt?: number;
}

export interface RtpLike {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payloadType: number;
  ssrc: number;
  payload: Uint8Array;
}

/** Counts one track's packets; fed by the subscriber, usable alone with synthetic packets. */
export class TrackCounter {
  readonly stats: TrackStats;
  private highestSeq?: number;
  private open?: { timestamp: number; keyframe: boolean; packets: number; bytes: number };
  private lastClosedTs?: number;
  private readonly frameListeners = new Set<(f: FrameInfo) => void>();

  constructor(
    readonly kind: "video" | "audio",
    /** Codec name for a payload type (the subscriber reads it from the answer). */
    private readonly codecFor: (pt: number) => NegotiatedCodec | undefined,
    /** performance.now() the ms fields count from (the POST); set later with setOrigin. */
    private origin = performance.now(),
  ) {
    this.stats = { kind, packets: 0, bytes: 0, frames: 0, keyframes: 0, sequenceGaps: 0, reordered: 0, duplicates: 0, payloadTypes: [] };
  }

  setOrigin(t: number): void {
    this.origin = t;
  }

  onFrame(listener: (f: FrameInfo) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  push(p: RtpLike, now = performance.now()): void {
    const s = this.stats;
    s.packets++;
    s.bytes += p.payload.length;
    s.lastPacketAt = now;
    s.firstPacketMs ??= now - this.origin;
    s.ssrc = p.ssrc;
    s.payloadType = p.payloadType;
    if (!s.payloadTypes.includes(p.payloadType)) s.payloadTypes.push(p.payloadType);
    const codec = this.codecFor(p.payloadType);
    if (codec) s.codec = codec;

    // Sequence: forward jumps are losses, backward steps are late packets.
    let late = false;
    if (this.highestSeq === undefined) {
      this.highestSeq = p.sequenceNumber;
    } else {
      const d = (p.sequenceNumber - this.highestSeq) & 0xffff;
      if (d === 0) {
        s.duplicates++;
        late = true;
      } else if (d < 0x8000) {
        s.sequenceGaps += d - 1;
        this.highestSeq = p.sequenceNumber;
      } else {
        s.reordered++;
        late = true;
      }
    }

    const name = codec?.name ?? "";
    const key = this.kind === "video" && isKeyframePacket(name, p.payload);
    if (key) s.firstKeyframeMs ??= now - this.origin;
    if (this.kind === "video" && name.toUpperCase() === "H264" && s.spsProfileLevelId === undefined) {
      for (const nal of h264Nals(p.payload)) {
        const plid = nal.type === 7 ? h264SpsProfileLevelId(nal.data) : undefined;
        if (plid) s.spsProfileLevelId = plid;
      }
    }
    if (key && name.toUpperCase() === "VP8") {
      const size = vp8KeyframeSize(p.payload);
      if (size && s.width === undefined) Object.assign(s, size);
      if (size) s.latestSize = size;
    }

    // Frames: one per RTP timestamp; video frames end at the marker bit.
    // Late packets (stragglers, retransmissions) join the open frame when they belong to it and
    // never open or close one.
    if (late && this.open?.timestamp !== p.timestamp) return;
    if (this.open && this.open.timestamp !== p.timestamp) this.closeFrame(false, now);
    if (!this.open) {
      if (p.timestamp === this.lastClosedTs) return; // the rest of a frame already closed by its marker
      this.open = { timestamp: p.timestamp, keyframe: false, packets: 0, bytes: 0 };
    }
    this.open.packets++;
    this.open.bytes += p.payload.length;
    if (key) this.open.keyframe = true;
    if (this.kind === "audio" || p.marker) this.closeFrame(this.kind === "video", now);
  }

  private closeFrame(complete: boolean, now: number): void {
    const f = this.open;
    if (!f) return;
    this.open = undefined;
    this.lastClosedTs = f.timestamp;
    const s = this.stats;
    const index = s.frames++;
    if (f.keyframe) s.keyframes++;
    if (index === 0) s.firstFrameWasKeyframe = f.keyframe;
    const info: FrameInfo = { kind: this.kind, timestamp: f.timestamp, keyframe: f.keyframe, complete, packets: f.packets, bytes: f.bytes, index, at: now };
    for (const l of this.frameListeners) l(info);
  }
}

// ---- SDP answer reading -----------------------------------------------------------------------

/** Codecs per m-section kind from an SDP (rtpmap + fmtp), in m-line order. */
export function sdpCodecs(sdp: string): { video: NegotiatedCodec[]; audio: NegotiatedCodec[] } {
  const out = { video: [] as NegotiatedCodec[], audio: [] as NegotiatedCodec[] };
  let kind: "video" | "audio" | undefined;
  let section: NegotiatedCodec[] = [];
  for (const raw of sdp.split(/\r?\n/)) {
    const line = raw.trim();
    const m = /^m=(\w+) (\d+) /.exec(line);
    if (m) {
      // A rejected section (port 0) carries nothing.
      kind = (m[1] === "video" || m[1] === "audio") && m[2] !== "0" ? m[1] : undefined;
      section = [];
      continue;
    }
    if (!kind) continue;
    const rtpmap = /^a=rtpmap:(\d+) ([^/]+)\/(\d+)(?:\/(\d+))?/.exec(line);
    if (rtpmap) {
      const c: NegotiatedCodec = {
        payloadType: Number(rtpmap[1]),
        name: rtpmap[2]!,
        mimeType: `${kind}/${rtpmap[2]!}`,
        clockRate: Number(rtpmap[3]),
        fmtp: "",
      };
      if (rtpmap[4]) c.channels = Number(rtpmap[4]);
      section.push(c);
      out[kind].push(c);
      continue;
    }
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (fmtp) {
      const c = section.find((x) => x.payloadType === Number(fmtp[1]));
      if (c) c.fmtp = fmtp[2]!;
    }
  }
  return out;
}

/** fmtp parameters as a map with lower-cased keys. */
export function fmtpParams(fmtp: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of fmtp.split(";")) {
    const i = part.indexOf("=");
    if (i > 0) out.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  return out;
}

// ---- the subscriber ---------------------------------------------------------------------------

export type WhepVideoCodec = VideoCodecSpec | VideoCodecSpec["codec"];

export interface WhepClientOptions {
  /** Receive codecs in preference order; false = no video m-line. Default: VP8, H.264 42e01f/4d001f/64001f, VP9. */
  video?: WhepVideoCodec[] | false;
  /** Default true (Opus); false = no audio m-line. */
  audio?: boolean;
  peerConfig?: Partial<PeerConfig>;
  connectTimeoutMs?: number;
  /** Offer RTX (RFC 4588) after each video codec, as browsers do: video codecs get PTs 96, 98, … and their RTX the next one. */
  rtx?: boolean;
}

/** Video codecs with explicit payload types, each followed by its RTX (apt) when asked. */
function videoCodecList(video: WhepVideoCodec[], rtx: boolean): RTCRtpCodecParameters[] {
  if (!rtx) return video.map((c) => videoCodecParameters(c));
  return video.flatMap((c, i) => {
    const spec = typeof c === "string" ? { codec: c } : c;
    const pt = spec.payloadType ?? 96 + 2 * i;
    return [
      videoCodecParameters({ ...spec, payloadType: pt }),
      new RTCRtpCodecParameters({ mimeType: "video/rtx", clockRate: 90000, payloadType: pt + 1, parameters: `apt=${pt}` }),
    ];
  });
}

export const DEFAULT_WHEP_VIDEO: WhepVideoCodec[] = [
  "VP8",
  { codec: "H264", profileLevelId: "42e01f" },
  { codec: "H264", profileLevelId: "4d001f" },
  { codec: "H264", profileLevelId: "64001f" },
  "VP9",
];

export interface PlayOptions extends SdpRequestOptions {
  waitConnected?: boolean;
}

export interface PlayResult {
  status: number;
  location: string;
  etag?: string;
  answer: string;
  response: SdpResponse;
}

export class WhepClient {
  readonly pc: RTCPeerConnection;
  readonly counters: { video: TrackCounter; audio: TrackCounter };
  /** Codecs the answer accepted, per kind. */
  negotiated: { video: NegotiatedCodec[]; audio: NegotiatedCodec[] } = { video: [], audio: [] };
  location?: string;
  etag?: string;
  answer?: string;
  /** performance.now() when the POST was sent. */
  postSentAt?: number;
  deleteStatus?: number;
  private offer?: Promise<string>;
  private requestOpts: SdpRequestOptions = {};
  private closing?: Promise<void>;
  private readonly connectTimeoutMs: number;
  private readonly subs: { unSubscribe: () => void }[] = [];

  constructor(opts: WhepClientOptions = {}) {
    const video = opts.video === undefined ? DEFAULT_WHEP_VIDEO : opts.video;
    const audio = opts.audio ?? true;
    if (video === false && !audio) throw new Error("a WHEP client needs video, audio or both");
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.pc = new RTCPeerConnection({
      bundlePolicy: "max-bundle",
      headerExtensions: browserLikeHeaderExtensions(),
      codecs: {
        video: video === false ? [] : videoCodecList(video, opts.rtx ?? false),
        audio: audio ? [opusCodecParameters()] : [],
      },
      ...loopbackPeerConfig(),
      ...opts.peerConfig,
    });
    const lookup = (kind: "video" | "audio") => (pt: number) => this.negotiated[kind].find((c) => c.payloadType === pt);
    this.counters = { video: new TrackCounter("video", lookup("video")), audio: new TrackCounter("audio", lookup("audio")) };
    // onTrack fires inside setRemoteDescription: subscribe first.
    this.subs.push(
      this.pc.onTrack.subscribe((track) => {
        const counter = track.kind === "video" ? this.counters.video : track.kind === "audio" ? this.counters.audio : undefined;
        if (!counter) return;
        this.subs.push(
          track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
            const h = rtp.header;
            counter.push({
              sequenceNumber: h.sequenceNumber,
              timestamp: h.timestamp,
              marker: h.marker,
              payloadType: h.payloadType,
              ssrc: h.ssrc,
              payload: rtp.payload,
            });
          }),
        );
      }),
    );
    if (video !== false) this.pc.addTransceiver("video", { direction: "recvonly" });
    if (audio) this.pc.addTransceiver("audio", { direction: "recvonly" });
  }

  get video(): TrackStats {
    return this.counters.video.stats;
  }

  get audio(): TrackStats {
    return this.counters.audio.stats;
  }

  /** Called for every frame of either track as it closes; returns an unsubscribe function. */
  onFrame(listener: (f: FrameInfo) => void): () => void {
    const a = this.counters.video.onFrame(listener);
    const b = this.counters.audio.onFrame(listener);
    return () => {
      a();
      b();
    };
  }

  createOffer(): Promise<string> {
    return (this.offer ??= gatherOffer(this.pc));
  }

  /** POSTs the offer, returns the raw response, applies nothing. */
  async postOffer(url: string, opts: SdpRequestOptions = {}): Promise<SdpResponse> {
    const sdp = await this.createOffer();
    this.postSentAt = performance.now();
    this.counters.video.setOrigin(this.postSentAt);
    this.counters.audio.setOrigin(this.postSentAt);
    return postSdp(url, sdp, opts);
  }

  /** POSTs the offer, expects 201 (SdpStatusError otherwise), applies the answer, waits until connected. */
  async play(url: string, opts: PlayOptions = {}): Promise<PlayResult> {
    const response = await this.postOffer(url, opts);
    if (response.status !== 201) throw new SdpStatusError(url, response);
    if (!response.location) throw new Error(`POST ${url} answered 201 without a Location header`);
    this.requestOpts = { token: opts.token, tokenHeader: opts.tokenHeader, headers: opts.headers };
    this.location = response.location;
    this.etag = response.etag;
    this.answer = response.body;
    this.negotiated = sdpCodecs(response.body);
    await this.pc.setRemoteDescription({ type: "answer", sdp: response.body });
    if (opts.waitConnected !== false) await waitConnected(this.pc, this.connectTimeoutMs);
    return { status: response.status, location: response.location, etag: response.etag, answer: response.body, response };
  }

  private describe(): string {
    const v = this.video;
    const a = this.audio;
    return (
      `video packets=${v.packets} frames=${v.frames} keyframes=${v.keyframes} codec=${v.codec?.name ?? "-"}; ` +
      `audio packets=${a.packets}; connection=${this.pc.connectionState}`
    );
  }

  waitForKeyframes(count = 1, timeoutMs = 10_000): Promise<void> {
    return waitFor(() => this.video.keyframes >= count, { timeoutMs, what: `${count} video keyframe(s)`, describe: () => this.describe() });
  }

  waitForFrames(count: number, timeoutMs = 10_000, kind: "video" | "audio" = "video"): Promise<void> {
    return waitFor(() => this.counters[kind].stats.frames >= count, {
      timeoutMs,
      what: `${count} ${kind} frame(s)`,
      describe: () => this.describe(),
    });
  }

  waitForPackets(count: number, kind: "video" | "audio", timeoutMs = 10_000): Promise<void> {
    return waitFor(() => this.counters[kind].stats.packets >= count, {
      timeoutMs,
      what: `${count} ${kind} packet(s)`,
      describe: () => this.describe(),
    });
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** DELETE (unless vanish) and close the peer. Idempotent; never throws. */
  close(opts: { vanish?: boolean } = {}): Promise<void> {
    return (this.closing ??= this.doClose(opts.vanish ?? false));
  }

  private async doClose(vanish: boolean): Promise<void> {
    if (!vanish && this.location) {
      this.deleteStatus = await deleteSession(this.location, this.requestOpts).catch(() => undefined);
    }
    await this.pc.close().catch(() => undefined);
    for (const s of this.subs.splice(0)) s.unSubscribe();
  }
}

/** Creates a subscriber and plays `url`; closes it again if that fails. */
export async function playStream(url: string, opts: WhepClientOptions & PlayOptions = {}): Promise<{ client: WhepClient; result: PlayResult }> {
  const client = new WhepClient(opts);
  try {
    const result = await client.play(url, opts);
    return { client, result };
  } catch (err) {
    await client.close({ vanish: true });
    throw err;
  }
}
