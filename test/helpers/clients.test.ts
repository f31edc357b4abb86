// The test clients proven without the real server: a tiny WHIP/WHEP answerer on node:http and
// werift plays the SFU (keyframe-gated forwarding, PLI on join), and the clients must see VP8 and
// H.264 frames and keyframes, keep the H.264 profile they were configured with, and leave no
// FFmpeg process, peer or socket behind.
import { randomBytes } from "node:crypto";
import http from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, type RTCRtpSender, type RtpPacket } from "werift";
import { buildFfmpegArgs, h264ProfileLevelId, pidAlive, type H264Profile } from "./ffmpeg-source.js";
import { postSdp, SdpStatusError } from "./http.js";
import { loopbackPeerConfig, sleep, waitFor } from "./net.js";
import { requireOrSkip } from "./requirements.js";
import {
  fmtpParams,
  h264IsKeyframe,
  h264Nals,
  h264SpsProfileLevelId,
  isKeyframePacket,
  playStream,
  sdpCodecs,
  TrackCounter,
  vp8IsKeyframe,
  vp8KeyframeSize,
  vp9IsKeyframe,
  WhepClient,
  type NegotiatedCodec,
} from "./whep-client.js";
import { gatherOffer, opusCodecParameters, publishTestStream, videoCodecParameters, type WhipClient } from "./whip-client.js";

// ---- pure parts -------------------------------------------------------------------------------

describe("payload inspection", () => {
  const vp8 = (descriptor: number[], first: number, rest: number[] = []) => Uint8Array.from([...descriptor, first, ...rest]);

  it("VP8: S bit with partition 0 and P=0 is a keyframe start, with or without extensions", () => {
    expect(vp8IsKeyframe(vp8([0x10], 0x00))).toBe(true);
    expect(vp8IsKeyframe(vp8([0x10], 0x01))).toBe(false); // P=1: interframe
    expect(vp8IsKeyframe(vp8([0x00], 0x00))).toBe(false); // not a partition start
    expect(vp8IsKeyframe(vp8([0x11], 0x00))).toBe(false); // partition 1
    // X, I with a 15-bit picture id (FFmpeg uses 7 bits, browsers 15), L, T/K
    expect(vp8IsKeyframe(vp8([0x90, 0xf0, 0x80 | 0x12, 0x34, 0x05, 0x20], 0x00))).toBe(true);
    expect(vp8IsKeyframe(vp8([0x90, 0x80, 0x05], 0x00))).toBe(true); // FFmpeg's layout
    expect(vp8IsKeyframe(vp8([0x90, 0x80, 0x05], 0x01))).toBe(false);
    expect(vp8IsKeyframe(Uint8Array.from([0x90, 0x80]))).toBe(false); // truncated
  });

  it("VP8: reads the size of a keyframe", () => {
    const key = vp8([0x10], 0x50, [0x2f, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
    expect(vp8KeyframeSize(key)).toEqual({ width: 640, height: 360 });
  });

  it("H.264: single NAL, STAP-A and FU-A start show IDR/SPS; FU-A continuations show nothing", () => {
    expect(h264IsKeyframe(Uint8Array.from([0x65, 0x88]))).toBe(true); // IDR
    expect(h264IsKeyframe(Uint8Array.from([0x41, 0x9a]))).toBe(false); // non-IDR slice
    const sps = [0x67, 0x42, 0xc0, 0x1f, 0xda];
    const pps = [0x68, 0xce, 0x3c, 0x80];
    const stap = Uint8Array.from([0x18, 0x00, sps.length, ...sps, 0x00, pps.length, ...pps]);
    expect(h264Nals(stap).map((n) => n.type)).toEqual([7, 8]);
    expect(h264IsKeyframe(stap)).toBe(true);
    expect(h264SpsProfileLevelId(h264Nals(stap)[0]!.data)).toBe("42c01f");
    expect(h264IsKeyframe(Uint8Array.from([0x7c, 0x85, 0x88]))).toBe(true); // FU-A start of IDR
    expect(h264IsKeyframe(Uint8Array.from([0x7c, 0x05, 0x88]))).toBe(false); // FU-A middle of IDR
    expect(h264IsKeyframe(Uint8Array.from([0x7c, 0x81, 0x88]))).toBe(false); // FU-A start of non-IDR
  });

  it("VP9: B without P is a keyframe start", () => {
    expect(vp9IsKeyframe(Uint8Array.from([0x08]))).toBe(true);
    expect(vp9IsKeyframe(Uint8Array.from([0x48]))).toBe(false);
    expect(vp9IsKeyframe(Uint8Array.from([0x00]))).toBe(false);
    expect(isKeyframePacket("opus", Uint8Array.from([0x08]))).toBe(false);
  });
});

describe("TrackCounter", () => {
  const vp8Codec: NegotiatedCodec = { payloadType: 96, name: "VP8", mimeType: "video/VP8", clockRate: 90000, fmtp: "" };
  const KEY = Uint8Array.from([0x10, 0x00, 0x00]);
  const DELTA_START = Uint8Array.from([0x10, 0x01, 0x00]);
  const CONT = Uint8Array.from([0x00, 0x77, 0x00]);
  const pkt = (seq: number, ts: number, marker: boolean, payload: Uint8Array) => ({
    sequenceNumber: seq,
    timestamp: ts,
    marker,
    payloadType: 96,
    ssrc: 7,
    payload,
  });

  it("counts frames, keyframes, gaps and late packets", () => {
    const c = new TrackCounter("video", () => vp8Codec, 0);
    const frames: boolean[] = [];
    c.onFrame((f) => frames.push(f.keyframe));
    c.push(pkt(65534, 1000, false, KEY), 10);
    c.push(pkt(65535, 1000, true, CONT), 11); // wraps next
    c.push(pkt(0, 4000, true, DELTA_START), 20);
    c.push(pkt(3, 7000, false, DELTA_START), 30); // 1 and 2 lost
    c.push(pkt(2, 4000, false, CONT), 31); // late: neither opens nor closes a frame
    c.push(pkt(4, 7000, true, CONT), 32);
    c.push(pkt(4, 7000, true, CONT), 33); // duplicate
    const s = c.stats;
    expect(frames).toEqual([true, false, false]);
    expect(s).toMatchObject({ packets: 7, frames: 3, keyframes: 1, sequenceGaps: 2, reordered: 1, duplicates: 1 });
    expect(s.firstFrameWasKeyframe).toBe(true);
    expect(s.firstKeyframeMs).toBe(10);
    expect(s.codec?.name).toBe("VP8");
  });

  it("a stream joined mid-frame does not start on a keyframe", () => {
    const c = new TrackCounter("video", () => vp8Codec, 0);
    c.push(pkt(10, 1000, true, CONT));
    c.push(pkt(11, 4000, false, KEY));
    c.push(pkt(12, 4000, true, CONT));
    expect(c.stats).toMatchObject({ frames: 2, keyframes: 1, firstFrameWasKeyframe: false });
  });

  it("a frame without marker closes when the next timestamp arrives", () => {
    const c = new TrackCounter("video", () => vp8Codec, 0);
    c.push(pkt(1, 1000, false, KEY));
    expect(c.stats.frames).toBe(0);
    c.push(pkt(2, 4000, false, DELTA_START));
    expect(c.stats).toMatchObject({ frames: 1, keyframes: 1, firstFrameWasKeyframe: true });
  });
});

describe("SDP and FFmpeg arguments", () => {
  it("reads codecs per kind from an answer, skipping rejected sections", () => {
    const sdp = [
      "v=0",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=rtpmap:111 opus/48000/2",
      "a=fmtp:111 minptime=10;useinbandfec=1",
      "m=video 9 UDP/TLS/RTP/SAVPF 102",
      "a=rtpmap:102 H264/90000",
      "a=fmtp:102 profile-level-id=4d001f;packetization-mode=1",
      "m=video 0 UDP/TLS/RTP/SAVPF 96",
      "a=rtpmap:96 VP8/90000",
      "",
    ].join("\r\n");
    const c = sdpCodecs(sdp);
    expect(c.audio).toEqual([{ payloadType: 111, name: "opus", mimeType: "audio/opus", clockRate: 48000, channels: 2, fmtp: "minptime=10;useinbandfec=1" }]);
    expect(c.video.map((x) => x.name)).toEqual(["H264"]);
    expect(fmtpParams(c.video[0]!.fmtp).get("profile-level-id")).toBe("4d001f");
  });

  it("FFmpeg gets payload types, ssrcs, profile and RTCP on the RTP port", () => {
    const { args, video, audio } = buildFfmpegArgs({
      video: { port: 5000, codec: "H264", h264Profile: "high", gop: 15, ssrc: 1234, payloadType: 100 },
      audio: { port: 5002, ssrc: 99 },
    });
    const line = args.join(" ");
    expect(line).toContain("-profile:v high -level:v 3.1");
    expect(line).toContain("-g 15");
    expect(line).toContain("-payload_type 100 -ssrc 1234 -f rtp rtp://127.0.0.1:5000?rtcpport=5000&pkt_size=1200");
    expect(line).toContain("-payload_type 111 -ssrc 99 -f rtp rtp://127.0.0.1:5002?rtcpport=5002");
    expect(video).toMatchObject({ profileLevelId: "64001f", payloadType: 100, ssrc: 1234, gop: 15 });
    expect(video?.fmtp).toBe("profile-level-id=64001f;packetization-mode=1;level-asymmetry-allowed=1");
    expect(audio).toMatchObject({ payloadType: 111, ssrc: 99, clockRate: 48000, channels: 2 });
    // FFmpeg's -ssrc is signed 32-bit: larger values make it exit, so they are refused up front.
    expect(() => buildFfmpegArgs({ audio: { port: 5002, ssrc: 0x80000000 } })).toThrow(/signed 32-bit/);
    for (let i = 0; i < 100; i++) {
      const a = buildFfmpegArgs({ audio: { port: 5002 } }).audio!;
      expect(a.ssrc).toBeGreaterThan(0);
      expect(a.ssrc).toBeLessThanOrEqual(0x7fffffff);
    }
    expect(h264ProfileLevelId("baseline")).toBe("42e01f");
    expect(h264ProfileLevelId("main", "4")).toBe("4d0028");
  });
});

// ---- against a werift stand-in for the server ------------------------------------------------

/** What a WHIP/WHEP request carried, for assertions. */
interface Seen {
  method: string;
  path: string;
  authorization?: string;
}

interface PublishedTrack {
  kind: "video" | "audio";
  codec: NegotiatedCodec;
  track: MediaStreamTrack;
  pc: RTCPeerConnection;
}

interface Viewer {
  pc: RTCPeerConnection;
  outputs: { kind: "video" | "audio"; sender: RTCRtpSender; started: boolean }[];
}

/** Keep only `pt` in the m-section of `kind` (werift answers with an offer's first H.264 entry). */
function narrowOffer(sdp: string, kind: string, pt: number): string {
  const lines = sdp.split("\r\n");
  const out: string[] = [];
  let inKind = false;
  for (const line of lines) {
    const m = /^m=(\w+) (\d+) (\S+) (.*)$/.exec(line);
    if (m) {
      inKind = m[1] === kind;
      out.push(inKind ? `m=${m[1]} ${m[2]} ${m[3]} ${pt}` : line);
      continue;
    }
    const a = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)/.exec(line);
    if (inKind && a && Number(a[1]) !== pt) continue;
    out.push(line);
  }
  return out.join("\r\n");
}

function sameCodec(pub: NegotiatedCodec, sub: NegotiatedCodec): boolean {
  if (pub.name.toUpperCase() !== sub.name.toUpperCase()) return false;
  if (pub.name.toUpperCase() !== "H264") return true;
  const a = fmtpParams(pub.fmtp).get("profile-level-id") ?? "42001f";
  const b = fmtpParams(sub.fmtp).get("profile-level-id") ?? "42001f";
  return a.slice(0, 2).toLowerCase() === b.slice(0, 2).toLowerCase();
}

async function answer(pc: RTCPeerConnection): Promise<string> {
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise<void>((resolve) => pc.iceGatheringStateChange.subscribe((s) => s === "complete" && resolve()));
  }
  return pc.localDescription!.sdp;
}

/** A one-room WHIP/WHEP answerer: enough SFU to prove the clients, nothing more. */
class MiniSfu {
  readonly seen: Seen[] = [];
  readonly sessions = new Map<string, RTCPeerConnection>();
  private published: PublishedTrack[] = [];
  private readonly viewers = new Set<Viewer>();
  private server!: http.Server;
  url = "";

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        this.handle(req, body).then(
          ({ status, headers, text }) => {
            res.writeHead(status, headers);
            res.end(text);
          },
          (err: unknown) => {
            res.writeHead(500, { "content-type": "application/json" });
            res.end(JSON.stringify({ error: String(err) }));
          },
        );
      });
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()));
    const addr = this.server.address();
    if (addr === null || typeof addr === "string") throw new Error("no address");
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  private async handle(req: http.IncomingMessage, body: string): Promise<{ status: number; headers: Record<string, string>; text: string }> {
    const path = req.url ?? "";
    this.seen.push({ method: req.method ?? "", path, authorization: req.headers.authorization });
    const json = (status: number, error: string) => ({ status, headers: { "content-type": "application/json" }, text: JSON.stringify({ error }) });
    if (req.method === "DELETE" && path.startsWith("/session/")) {
      const pc = this.sessions.get(path.slice("/session/".length));
      if (!pc) return json(404, "not found");
      this.sessions.delete(path.slice("/session/".length));
      await pc.close();
      return { status: 200, headers: {}, text: "" };
    }
    if (req.method !== "POST") return json(405, "method not allowed");
    if (req.headers["content-type"] !== "application/sdp") return json(415, "unsupported media type");
    const result = path === "/whip" ? await this.publish(body) : path === "/whep" ? await this.play(body) : undefined;
    if (!result) return json(404, "no such endpoint");
    if ("error" in result) return json(result.status, result.error);
    const id = randomBytes(16).toString("hex");
    this.sessions.set(id, result.pc);
    return { status: 201, headers: { "content-type": "application/sdp", location: `/session/${id}`, etag: `"${id.slice(0, 8)}"` }, text: result.sdp };
  }

  private async publish(offer: string): Promise<{ pc: RTCPeerConnection; sdp: string } | { status: number; error: string }> {
    if (this.published.length > 0) return { status: 409, error: "publisher already exists in this room" };
    const offered = sdpCodecs(offer);
    const pc = new RTCPeerConnection({
      ...loopbackPeerConfig(),
      bundlePolicy: "max-bundle",
      codecs: {
        video: offered.video.slice(0, 1).map(
          (c) =>
            new RTCRtpCodecParameters({
              mimeType: c.mimeType,
              clockRate: c.clockRate,
              payloadType: c.payloadType,
              parameters: c.fmtp || undefined,
              rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
            }),
        ),
        audio: [opusCodecParameters()],
      },
    });
    pc.onTrack.subscribe((track) => {
      const kind = track.kind === "video" ? "video" : "audio";
      const codec = offered[kind][0]!;
      this.published.push({ kind, codec, track, pc });
      track.onReceiveRtp.subscribe((rtp) => this.forward(kind, codec, rtp));
    });
    await pc.setRemoteDescription({ type: "offer", sdp: offer });
    return { pc, sdp: await answer(pc) };
  }

  private async play(offer: string): Promise<{ pc: RTCPeerConnection; sdp: string } | { status: number; error: string }> {
    if (this.published.length === 0) return { status: 404, error: "no active publisher in room" };
    const offered = sdpCodecs(offer);
    const chosen = new Map<"video" | "audio", NegotiatedCodec>();
    for (const p of this.published) {
      const match = offered[p.kind].find((c) => sameCodec(p.codec, c));
      if (!match) return { status: 422, error: `offer cannot receive the publisher's codec: ${p.codec.name}` };
      chosen.set(p.kind, match);
    }
    let narrowed = offer;
    for (const [kind, c] of chosen) narrowed = narrowOffer(narrowed, kind, c.payloadType);
    const codec = (c?: NegotiatedCodec) =>
      c
        ? [
            new RTCRtpCodecParameters({
              mimeType: c.mimeType,
              clockRate: c.clockRate,
              channels: c.channels,
              payloadType: c.payloadType,
              parameters: c.fmtp || undefined,
              rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
            }),
          ]
        : [];
    const pc = new RTCPeerConnection({
      ...loopbackPeerConfig(),
      bundlePolicy: "max-bundle",
      codecs: { video: codec(chosen.get("video")), audio: codec(chosen.get("audio")) },
    });
    await pc.setRemoteDescription({ type: "offer", sdp: narrowed });
    const viewer: Viewer = { pc, outputs: [] };
    for (const t of pc.getTransceivers()) {
      const kind = t.kind === "video" ? "video" : "audio";
      if (!chosen.has(kind)) continue;
      t.setDirection("sendonly");
      viewer.outputs.push({ kind, sender: t.sender, started: kind === "audio" });
    }
    pc.connectionStateChange.subscribe((s) => {
      if (s === "connected") {
        this.viewers.add(viewer);
        // A joining viewer asks the publisher for a keyframe.
        const v = this.published.find((p) => p.kind === "video");
        const receiver = v?.pc.getTransceivers().find((t) => t.kind === "video")?.receiver;
        if (v?.track.ssrc !== undefined && receiver) void receiver.sendRtcpPLI(v.track.ssrc).catch(() => undefined);
      }
      if (s === "closed" || s === "failed") this.viewers.delete(viewer);
    });
    return { pc, sdp: await answer(pc) };
  }

  /** Keyframe-gated fan-out: no video before a viewer's first keyframe. */
  private forward(kind: "video" | "audio", codec: NegotiatedCodec, rtp: RtpPacket): void {
    for (const v of this.viewers) {
      for (const o of v.outputs) {
        if (o.kind !== kind) continue;
        if (!o.started) {
          if (!isKeyframePacket(codec.name, rtp.payload)) continue;
          o.started = true;
        }
        const out = rtp.clone();
        out.header.extensions = [];
        void o.sender.sendRtp(out).catch(() => undefined);
      }
    }
  }

  /** Forget the publisher (between tests). */
  async reset(): Promise<void> {
    for (const pc of this.sessions.values()) await pc.close();
    for (const p of this.published) await p.pc.close();
    this.sessions.clear();
    this.published = [];
    this.viewers.clear();
    this.seen.length = 0;
  }

  async close(): Promise<void> {
    await this.reset();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const ffmpeg = requireOrSkip("ffmpeg");

describe.skipIf(!ffmpeg.ok)(ffmpeg.title("WHIP and WHEP clients through a werift stand-in"), () => {
  let sfu: MiniSfu;
  const open: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];
  beforeAll(async () => {
    sfu = new MiniSfu();
    await sfu.start();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await sfu.reset();
  });
  afterAll(() => sfu.close());

  async function publish(opts: Parameters<typeof publishTestStream>[1]): Promise<WhipClient> {
    const { client } = await publishTestStream(`${sfu.url}/whip`, opts);
    open.push(client);
    return client;
  }

  it("VP8 + Opus: keyframes, frames and audio arrive; PLI on join; everything closes", async () => {
    const pub = await publish({ video: { codec: "VP8" }, source: { gop: 30 }, token: "secret-1" });
    expect(sfu.seen[0]).toMatchObject({ method: "POST", path: "/whip", authorization: "Bearer secret-1" });
    await waitFor(() => pub.rtpIn.video > 30 && pub.rtpIn.audio > 10, { what: "FFmpeg RTP at the publisher", timeoutMs: 10_000 });
    expect(pub.rtcpIn.video + pub.rtcpIn.audio).toBeGreaterThanOrEqual(0); // FFmpeg's SRs land on the same port, filtered

    const { client: sub, result } = await playStream(`${sfu.url}/whep`);
    open.push(sub);
    expect(result.status).toBe(201);
    expect(result.location).toMatch(new RegExp(`^${sfu.url}/session/[0-9a-f]{32}$`));
    await sub.waitForKeyframes(2, 10_000);
    await sub.waitForFrames(45);
    await pub.waitForKeyframeRequests(1);

    const v = sub.video;
    expect(v.codec?.name).toBe("VP8");
    expect(v.payloadType).toBe(v.codec?.payloadType);
    expect(v.firstFrameWasKeyframe).toBe(true);
    expect(v.firstKeyframeMs).toBeLessThan(3000);
    expect(v).toMatchObject({ width: 640, height: 360 });
    expect(v.sequenceGaps).toBeLessThanOrEqual(2);
    expect(sub.audio.codec?.name.toLowerCase()).toBe("opus");
    expect(sub.audio.packets).toBeGreaterThan(50);
    expect(sub.audio.frames).toBe(sub.audio.packets - sub.audio.duplicates - sub.audio.reordered);
    expect(pub.plis).toBeGreaterThanOrEqual(1);

    const pid = pub.source!.pid;
    expect(pidAlive(pid)).toBe(true);
    await Promise.all([sub.close(), pub.close()]);
    await pub.close(); // idempotent
    expect(pidAlive(pid)).toBe(false);
    expect(pub.deleteStatus).toBe(200);
    expect(sub.deleteStatus).toBe(200);
    const deletes = sfu.seen.filter((s) => s.method === "DELETE");
    expect(deletes).toHaveLength(2);
    expect(deletes.find((d) => d.path === new URL(pub.location!).pathname)?.authorization).toBe("Bearer secret-1");
    expect(pub.pc.connectionState).toBe("closed");
    expect(sub.pc.connectionState).toBe("closed");
  });

  it.each<H264Profile>(["baseline", "main", "high"])("H.264 %s: keyframes arrive and the profile stays what was configured", async (profile) => {
    const pub = await publish({ video: { codec: "H264", h264Profile: profile }, source: { gop: 30 } });
    const advertised = h264ProfileLevelId(profile);
    // The publisher's offer carries exactly the configured profile.
    const offered = sdpCodecs(await pub.createOffer()).video;
    expect(offered.map((c) => c.name)).toEqual(["H264"]);
    expect(fmtpParams(offered[0]!.fmtp).get("profile-level-id")).toBe(advertised);

    // Default WHEP offer lists VP8, three H.264 profiles and VP9: the stand-in picks the same profile.
    const { client: sub } = await playStream(`${sfu.url}/whep`);
    open.push(sub);
    await sub.waitForKeyframes(1, 10_000);
    await sub.waitForFrames(30);
    const v = sub.video;
    expect(v.codec?.name).toBe("H264");
    expect(fmtpParams(v.codec!.fmtp).get("profile-level-id")).toBe(advertised);
    expect(fmtpParams(v.codec!.fmtp).get("packetization-mode")).toBe("1");
    // In-band: the SPS the encoder wrote names the same profile_idc.
    expect(v.spsProfileLevelId?.slice(0, 2)).toBe(advertised.slice(0, 2));
    expect(v.spsProfileLevelId?.slice(4)).toBe("1f");
    expect(v.firstFrameWasKeyframe).toBe(true);
    expect(v.keyframes).toBeGreaterThanOrEqual(1);
    expect(pub.keyframeRequests).toBeGreaterThanOrEqual(1);

    const pid = pub.source!.pid;
    await pub.close();
    expect(pidAlive(pid)).toBe(false);
  });

  it("error statuses come back raw from postOffer and as SdpStatusError from play/publish", async () => {
    const early = new WhepClient();
    open.push(early);
    const noPub = await early.postOffer(`${sfu.url}/whep`);
    expect(noPub).toMatchObject({ status: 404, error: "no active publisher in room" });

    await publish({ video: { codec: "H264", h264Profile: "main" }, audio: false });
    const vp8Only = new WhepClient({ video: ["VP8"], audio: false });
    open.push(vp8Only);
    const err = await vp8Only.play(`${sfu.url}/whep`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SdpStatusError);
    expect((err as SdpStatusError).status).toBe(422);
    expect((err as SdpStatusError).response.error).toMatch(/H264/);

    const second = await publishTestStream(`${sfu.url}/whip`, { video: { codec: "VP8" } }).catch((e: unknown) => e);
    expect((second as SdpStatusError).status).toBe(409);

    const wrongType = await postSdp(`${sfu.url}/whip`, "v=0\r\n", { contentType: "text/plain" });
    expect(wrongType.status).toBe(415);
  });

  it("close({ vanish: true }) sends no DELETE, closes the peer and kills FFmpeg", async () => {
    const pub = await publish({ video: { codec: "VP8" }, audio: false });
    const sub = new WhepClient({ audio: false });
    open.push(sub);
    await sub.play(`${sfu.url}/whep`);
    await sub.waitForFrames(5);
    const pid = pub.source!.pid;
    await Promise.all([pub.close({ vanish: true }), sub.close({ vanish: true })]);
    expect(sfu.seen.filter((s) => s.method === "DELETE")).toHaveLength(0);
    expect(pidAlive(pid)).toBe(false);
    expect(pub.pc.connectionState).toBe("closed");
    expect(pub.deleteStatus).toBeUndefined();
    // The vanished publisher's packets stop reaching the viewer side.
    const before = sub.video.packets;
    await sleep(300);
    expect(sub.video.packets).toBe(before);
  });

  it("gatherOffer returns an offer with every candidate, loopback among them", async () => {
    const pc = new RTCPeerConnection({ ...loopbackPeerConfig(), codecs: { video: [videoCodecParameters("VP8")] } });
    try {
      pc.addTransceiver(new MediaStreamTrack({ kind: "video" }), { direction: "sendonly" });
      const sdp = await gatherOffer(pc);
      const candidates = sdp.split("\r\n").filter((l) => l.startsWith("a=candidate:"));
      expect(candidates.length).toBeGreaterThan(0);
      expect(candidates.some((c) => c.includes(" 127.0.0.1 "))).toBe(true);
      expect(sdp).toMatch(/a=rtpmap:\d+ VP8\/90000/);
    } finally {
      await pc.close();
    }
  });
});
