// werift peers that talk to the server over real WHIP/WHEP HTTP and real UDP on loopback,
// fed by a real FFmpeg encoder. Every process and socket opened here is closed by close().
import { spawn, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtcpPayloadSpecificFeedback,
  type RtpPacket,
} from "werift";
import { startsKeyframe } from "../../src/sfu/keyframes.js";
import type { CodecName } from "../../src/sfu/sdp.js";
import { resolveFfmpeg } from "../../src/bridges/ffmpeg-path.js";

export type VideoCodec = "VP8" | "H264";

/** ICE on loopback only: no test traffic reaches any other address. */
const LOOPBACK = {
  iceAdditionalHostAddresses: ["127.0.0.1"],
  iceUseIpv6: false,
  iceServers: [],
  iceFilterCandidatePair: (pair: { localCandidate: { host: string }; remoteCandidate: { host: string } }) =>
    pair.localCandidate.host === "127.0.0.1" && pair.remoteCandidate.host === "127.0.0.1",
};

const FEEDBACK = [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "ccm", parameter: "fir" }];

export function videoCodec(codec: VideoCodec, profileLevelId = "42e01f"): RTCRtpCodecParameters {
  return codec === "VP8"
    ? new RTCRtpCodecParameters({ mimeType: "video/VP8", clockRate: 90000, rtcpFeedback: FEEDBACK })
    : new RTCRtpCodecParameters({
        mimeType: "video/H264",
        clockRate: 90000,
        rtcpFeedback: FEEDBACK,
        parameters: `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${profileLevelId}`,
      });
}

export const opusCodec = () => new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 });

async function completeOffer(pc: RTCPeerConnection): Promise<string> {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise<void>((resolve) => pc.iceGatheringStateChange.subscribe((s) => s === "complete" && resolve()));
  }
  return pc.localDescription?.sdp ?? "";
}

function waitConnected(pc: RTCPeerConnection, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (pc.connectionState === "connected") return resolve();
    const timer = setTimeout(() => reject(new Error(`not connected after ${ms} ms (${pc.connectionState})`)), ms);
    pc.connectionStateChange.subscribe((s) => {
      if (s === "connected") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

export interface SdpExchange {
  status: number;
  location?: string;
  answer: string;
}

async function postOffer(url: string, sdp: string, token?: string): Promise<SdpExchange> {
  const headers: Record<string, string> = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: "POST", headers, body: sdp });
  return { status: res.status, location: res.headers.get("location") ?? undefined, answer: await res.text() };
}

// ---- media source ---------------------------------------------------------------------------

export interface SourceOptions {
  video?: VideoCodec;
  audio?: boolean;
  /** Frames between keyframes at 30 fps. */
  gop?: number;
  width?: number;
  height?: number;
  bitrateKbps?: number;
  /** x264 profile for H.264 (baseline = 42e01f as advertised by default). */
  h264Profile?: "baseline" | "main" | "high";
}

/** A live FFmpeg encoder writing RTP to loopback ports, one port per track. */
export class FfmpegSource {
  readonly video?: dgram.Socket;
  readonly audio?: dgram.Socket;
  private proc: ChildProcess | undefined;
  private closed = false;

  private constructor(video: dgram.Socket | undefined, audio: dgram.Socket | undefined) {
    this.video = video;
    this.audio = audio;
  }

  static async start(opts: SourceOptions): Promise<FfmpegSource> {
    const bind = async () => {
      const s = dgram.createSocket("udp4");
      await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
      return s;
    };
    const source = new FfmpegSource(opts.video ? await bind() : undefined, opts.audio ? await bind() : undefined);
    const args = ["-hide_banner", "-loglevel", "error", "-re"];
    const w = opts.width ?? 320;
    const h = opts.height ?? 240;
    if (opts.video) args.push("-f", "lavfi", "-i", `testsrc=size=${w}x${h}:rate=30`);
    if (opts.audio) args.push("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000");
    let input = 0;
    if (opts.video && source.video) {
      const gop = String(opts.gop ?? 30);
      const rate = `${opts.bitrateKbps ?? 400}k`;
      args.push("-map", `${input++}:v`);
      if (opts.video === "VP8") {
        args.push("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-g", gop, "-b:v", rate, "-auto-alt-ref", "0");
      } else {
        args.push("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0", "-g", gop, "-b:v", rate);
        args.push("-profile:v", opts.h264Profile ?? "baseline", "-pix_fmt", "yuv420p");
      }
      args.push("-payload_type", "96", "-ssrc", "1111", "-f", "rtp", "-pkt_size", "1200", `rtp://127.0.0.1:${source.video.address().port}`);
    }
    if (opts.audio && source.audio) {
      args.push("-map", `${input++}:a`, "-c:a", "libopus", "-ac", "2", "-b:a", "64k", "-payload_type", "111", "-ssrc", "2222");
      args.push("-f", "rtp", `rtp://127.0.0.1:${source.audio.address().port}`);
    }
    source.proc = spawn(resolveFfmpeg(), args, { stdio: ["ignore", "ignore", "pipe"] });
    source.proc.stderr?.on("data", () => undefined);
    return source;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((r) => proc.once("exit", () => r()));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(timer);
    }
    this.video?.close();
    this.audio?.close();
  }
}

// ---- publisher ------------------------------------------------------------------------------

export interface PublisherOptions extends SourceOptions {
  token?: string;
}

export class WhipPublisher {
  plis = 0;
  firs = 0;
  location?: string;
  private closed = false;

  private constructor(
    readonly base: string,
    readonly pc: RTCPeerConnection,
    readonly source: FfmpegSource,
  ) {}

  /** Starts FFmpeg, publishes to `room`, and resolves once ICE/DTLS are up (throws on a non-201). */
  static async publish(base: string, room: string, opts: PublisherOptions): Promise<WhipPublisher> {
    const source = await FfmpegSource.start(opts);
    const pc = new RTCPeerConnection({
      ...LOOPBACK,
      codecs: {
        video: opts.video ? [videoCodec(opts.video, opts.h264Profile === "high" ? "64001f" : opts.h264Profile === "main" ? "4d001f" : "42e01f")] : [],
        audio: opts.audio ? [opusCodec()] : [],
      },
    });
    const pub = new WhipPublisher(base, pc, source);
    try {
      for (const [kind, sock] of [["video", source.video], ["audio", source.audio]] as const) {
        if (!sock) continue;
        const track = new MediaStreamTrack({ kind });
        sock.on("message", (msg) => track.writeRtp(msg));
        const t = pc.addTransceiver(track, { direction: "sendonly" });
        t.sender.onRtcp.subscribe((rtcp) => {
          if (rtcp instanceof RtcpPayloadSpecificFeedback) {
            if (rtcp.feedback.count === 1) pub.plis++;
            if (rtcp.feedback.count === 4) pub.firs++;
          }
        });
      }
      const ex = await postOffer(`${base}/api/whip/publish/${room}`, await completeOffer(pc), opts.token);
      if (ex.status !== 201) throw new Error(`WHIP answered ${ex.status}: ${ex.answer}`);
      pub.location = ex.location;
      await pc.setRemoteDescription({ type: "answer", sdp: ex.answer });
      await waitConnected(pc);
      return pub;
    } catch (err) {
      await pub.close({ vanish: true });
      throw err;
    }
  }

  /** DELETE then close; with vanish, the peer just goes silent like a killed process. */
  async close(opts: { vanish?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!opts.vanish && this.location) await fetch(this.base + this.location, { method: "DELETE" }).catch(() => undefined);
    await this.source.close();
    await this.pc.close();
  }
}

// ---- subscriber -----------------------------------------------------------------------------

export interface TrackStats {
  codec?: string;
  payloadType?: number;
  packets: number;
  bytes: number;
  frames: number;
  keyframes: number;
  /** Whether the first packet received was the start of a keyframe. */
  firstWasKeyframe?: boolean;
  /** ms from the WHEP POST to the first keyframe packet. */
  firstKeyframeMs?: number;
  /** Sequence numbers skipped (losses). */
  gaps: number;
}

export class WhepSubscriber {
  readonly video: TrackStats = { packets: 0, bytes: 0, frames: 0, keyframes: 0, gaps: 0 };
  readonly audio: TrackStats = { packets: 0, bytes: 0, frames: 0, keyframes: 0, gaps: 0 };
  location?: string;
  private closed = false;

  private constructor(
    readonly base: string,
    readonly pc: RTCPeerConnection,
  ) {}

  /** Subscribes with the given receive codecs; `expectStatus` other than 201 returns without connecting. */
  static async play(
    base: string,
    room: string,
    opts: { video?: RTCRtpCodecParameters[]; audio?: boolean; token?: string } = {},
  ): Promise<{ subscriber: WhepSubscriber; exchange: SdpExchange }> {
    const pc = new RTCPeerConnection({
      ...LOOPBACK,
      codecs: { video: opts.video ?? [videoCodec("VP8"), videoCodec("H264")], audio: opts.audio === false ? [] : [opusCodec()] },
    });
    const sub = new WhepSubscriber(base, pc);
    pc.addTransceiver("video", { direction: "recvonly" });
    if (opts.audio !== false) pc.addTransceiver("audio", { direction: "recvonly" });
    let t0 = 0;
    pc.onTrack.subscribe((track) => {
      const stats = track.kind === "video" ? sub.video : sub.audio;
      let lastTs: number | undefined;
      let lastSeq: number | undefined;
      track.onReceiveRtp.subscribe((packet: RtpPacket) => {
        const codecName = (track.codec?.name ?? "").toUpperCase();
        stats.codec = track.codec?.name;
        stats.payloadType = packet.header.payloadType;
        const name: CodecName = codecName === "OPUS" ? "opus" : (codecName as CodecName);
        const key = track.kind === "video" && startsKeyframe(name, packet.payload);
        if (stats.packets === 0) stats.firstWasKeyframe = key;
        stats.packets++;
        stats.bytes += packet.payload.length;
        if (lastSeq !== undefined) {
          const d = (packet.header.sequenceNumber - lastSeq) & 0xffff;
          if (d > 1 && d < 0x8000) stats.gaps += d - 1;
        }
        lastSeq = packet.header.sequenceNumber;
        if (packet.header.timestamp !== lastTs) {
          stats.frames++;
          lastTs = packet.header.timestamp;
        }
        if (key) {
          stats.keyframes++;
          stats.firstKeyframeMs ??= performance.now() - t0;
        }
      });
    });
    const offer = await completeOffer(pc);
    t0 = performance.now();
    const exchange = await postOffer(`${base}/api/whep/play/${room}`, offer, opts.token);
    if (exchange.status !== 201) {
      await pc.close();
      return { subscriber: sub, exchange };
    }
    sub.location = exchange.location;
    await pc.setRemoteDescription({ type: "answer", sdp: exchange.answer });
    await waitConnected(pc);
    return { subscriber: sub, exchange };
  }

  async close(opts: { vanish?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!opts.vanish && this.location) await fetch(this.base + this.location, { method: "DELETE" }).catch(() => undefined);
    await this.pc.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` is true or `ms` pass; returns whether it became true. */
export async function until(check: () => boolean, ms: number, step = 100): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(step);
  }
  return check();
}
