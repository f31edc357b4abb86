// Room egress: a room's tracks leave the SFU as plain RTP on loopback UDP, read by one FFmpeg
// through a generated SDP file (`-protocol_whitelist file,udp,rtp -i room.sdp`).
//
// - One PacketSink per track sends each forwarded packet (`packet.serialize()`: the fan-out has
//   already stripped the publisher's header extensions and padding) to 127.0.0.1:<port>, with the
//   publisher's own payload types, clock rates and fmtp written into the SDP.
// - FFmpeg binds the ports of the SDP itself (RTP on the m= port, RTCP on port+1), so ports are
//   chosen right before each FFmpeg start (`prepare`), and the sinks are armed only once FFmpeg
//   holds them (seen in /proc/net/udp): a keyframe sent before that would be lost. Arming adds
//   the sinks with `waitForKeyframe: true`, which asks the publisher for a keyframe (or replays the
//   GOP cache of an ingest room), so FFmpeg starts on a keyframe.
// - Before a track's first packet and then every second, the sink sends FFmpeg an RTCP sender
//   report mapping the packet's RTP timestamp to the wall clock it arrived at. FFmpeg's RTP
//   demuxer then places audio and video on one timeline (without it each stream starts at 0, and
//   video, which waits for a keyframe, would come out early by that wait).
// - Optional keyframe pacing: when a copied H.264 track has gone longer than N ms without a
//   keyframe, the publisher is asked for one, so HLS segments and RTMP GOPs stay short with
//   browsers that only send keyframes on request.

import dgram from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { RtpPacket } from "werift";
import { fail } from "../errors.js";
import type { PacketSink } from "../sfu/forward.js";
import { startsKeyframe } from "../sfu/keyframes.js";
import type { PublishedTrack } from "../sfu/publisher.js";
import type { CodecName } from "../sfu/sdp.js";

/** Codecs FFmpeg 5.x can depacketize from RTP (no AV1 depacketizer before FFmpeg 7). */
export const EGRESS_CODECS: readonly CodecName[] = ["H264", "VP8", "VP9", "opus"];

/** SDP encoding names FFmpeg's RTP demuxer knows. */
const SDP_NAME: Record<CodecName, string> = { H264: "H264", VP8: "VP8", VP9: "VP9", AV1: "AV1", opus: "opus" };

export interface SdpTrack {
  kind: "audio" | "video";
  codecName: CodecName;
  payloadType: number;
  clockRate: number;
  channels?: number;
  fmtp: string;
  port: number;
}

/**
 * The SDP FFmpeg reads: one m= section per track on 127.0.0.1, the publisher's payload type,
 * `rtpmap` (Opus always `/48000/2`) and `fmtp` (H.264 packetization-mode, sprop-parameter-sets…).
 */
export function buildEgressSdp(name: string, tracks: SdpTrack[]): string {
  const lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", `s=${name.replace(/[^\x20-\x7e]/g, "")}`, "c=IN IP4 127.0.0.1", "t=0 0"];
  for (const t of tracks) {
    if (!EGRESS_CODECS.includes(t.codecName)) throw fail("unsupported_codec", `cannot bridge ${t.codecName}`);
    if (!Number.isInteger(t.payloadType) || t.payloadType < 0 || t.payloadType > 127) throw new Error(`bad payload type ${t.payloadType}`);
    if (!Number.isInteger(t.port) || t.port <= 0 || t.port > 65534) throw new Error(`bad port ${t.port}`);
    const clock = t.codecName === "opus" ? 48000 : t.clockRate || 90000;
    const rtpmap = t.codecName === "opus" ? `opus/48000/${t.channels === 1 ? 1 : 2}` : `${SDP_NAME[t.codecName]}/${clock}`;
    lines.push(`m=${t.kind} ${t.port} RTP/AVP ${t.payloadType}`, `a=rtpmap:${t.payloadType} ${rtpmap}`);
    // The fmtp came from a parsed SDP line; keep it on one line whatever happens.
    const fmtp = t.fmtp.replace(/[\r\n]/g, "").trim();
    if (fmtp !== "") lines.push(`a=fmtp:${t.payloadType} ${fmtp}`);
    lines.push("a=recvonly");
  }
  return lines.join("\r\n") + "\r\n";
}

/** Whether this track can be bridged (FFmpeg can read its RTP). */
export function egressable(track: PublishedTrack): boolean {
  return EGRESS_CODECS.includes(track.codecName);
}

function bindUdp(port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    s.once("error", () => {
      s.close();
      resolve(undefined);
    });
    s.bind(port, "127.0.0.1", () => resolve(s));
  });
}

function closeUdp(s: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      s.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

/** A port P such that P and P+1 (RTP and RTCP) were both free a moment ago. */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const a = await bindUdp(0);
    if (!a) continue;
    const p = a.address().port;
    const b = p < 65535 ? await bindUdp(p + 1) : undefined;
    await closeUdp(a);
    if (b) {
      await closeUdp(b);
      return p;
    }
  }
  throw fail("capacity", "no free UDP port pair on 127.0.0.1");
}

/** UDP ports bound on this host right now, from /proc/net/udp (Linux); undefined when unreadable. */
export function boundUdpPorts(): Set<number> | undefined {
  const ports = new Set<number>();
  let any = false;
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    any = true;
    for (const line of text.split("\n").slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      const hex = local?.split(":").pop();
      if (hex) ports.add(parseInt(hex, 16));
    }
  }
  return any ? ports : undefined;
}

/** 2208988800 s between the NTP epoch (1900) and the Unix epoch. */
const NTP_OFFSET = 2208988800;

/** An RTCP sender report (RFC 3550 §6.4.1) without report blocks: 28 bytes. */
export function senderReport(ssrc: number, wallMs: number, rtpTimestamp: number, packets: number, octets: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  const seconds = Math.floor(wallMs / 1000);
  const fraction = Math.floor(((wallMs % 1000) / 1000) * 0x100000000);
  b.writeUInt32BE((seconds + NTP_OFFSET) >>> 0, 8);
  b.writeUInt32BE(fraction >>> 0, 12);
  b.writeUInt32BE(rtpTimestamp >>> 0, 16);
  b.writeUInt32BE(packets >>> 0, 20);
  b.writeUInt32BE(octets >>> 0, 24);
  return b;
}

/**
 * Sender reports for one track: the wall clock is anchored to the RTP timestamp once (at the first
 * packet after arming) and then follows the RTP clock, so every report says the same thing about
 * the media's timeline. (FFmpeg re-anchors on each report: reports taken from jittery arrival
 * times would make its timestamps jump back and forth, and late packets — a stalled publisher, a
 * busy machine — must keep their media time, not take the time they arrived.) Only a jump of the
 * RTP timestamp itself (an encoder restart: consecutive packets more than REANCHOR_MS apart in RTP
 * time than in arrival time) re-anchors.
 */
export class SenderClock {
  private anchorWall = 0;
  private lastTs = 0;
  private lastArrival = 0;
  /** RTP ticks since the anchor, unwrapped. */
  private ticks = 0;
  anchored = false;
  /** Times the clock re-anchored on a timestamp jump. */
  jumps = 0;

  constructor(private readonly clockRate: number) {}

  /** The wall clock (ms) of RTP timestamp `ts` arriving at `nowMs`, anchoring on the first call. */
  wallOf(ts: number, nowMs: number): number {
    if (!this.anchored) return this.anchor(ts, nowMs);
    const delta = (ts - this.lastTs) | 0;
    const deltaMs = (delta * 1000) / this.clockRate;
    if (Math.abs(deltaMs - (nowMs - this.lastArrival)) > REANCHOR_MS) {
      this.jumps++;
      return this.anchor(ts, nowMs);
    }
    this.ticks += delta;
    this.lastTs = ts >>> 0;
    this.lastArrival = nowMs;
    return this.anchorWall + (this.ticks * 1000) / this.clockRate;
  }

  private anchor(ts: number, nowMs: number): number {
    this.anchored = true;
    this.anchorWall = nowMs;
    this.lastTs = ts >>> 0;
    this.lastArrival = nowMs;
    this.ticks = 0;
    return nowMs;
  }

  reset(): void {
    this.anchored = false;
  }
}

const REANCHOR_MS = 5000;
const SR_INTERVAL_MS = 1000;

/** One track's sender toward FFmpeg. */
class EgressSink implements PacketSink {
  port = 0;
  armed = false;
  /** Packets handed over while `add()` replays a GOP: sent after a sender report that fits them. */
  private burst: Buffer[] | undefined;
  private burstTs = 0;
  private burstSsrc = 0;
  private readonly clock: SenderClock;
  private lastSrAt = 0;
  packets = 0;
  octets = 0;
  lastKeyframeAt = 0;
  /** Longest wait between two packets since arming (ms): a stalled publisher shows here. */
  maxGapMs = 0;
  private lastWriteAt = 0;

  get clockJumps(): number {
    return this.clock.jumps;
  }

  constructor(
    readonly track: PublishedTrack,
    private readonly socket: dgram.Socket,
  ) {
    this.clock = new SenderClock(track.codec.clockRate || (track.kind === "audio" ? 48000 : 90000));
  }

  write(packet: RtpPacket): void {
    if (!this.armed) return;
    const h = packet.header;
    if (this.track.kind === "video" && startsKeyframe(this.track.codecName, packet.payload)) this.lastKeyframeAt = performance.now();
    const buf = packet.serialize();
    if (this.burst) {
      this.burst.push(buf);
      this.burstTs = h.timestamp;
      this.burstSsrc = h.ssrc;
      return;
    }
    const now = Date.now();
    if (this.packets > 0 && now - this.lastWriteAt > this.maxGapMs) this.maxGapMs = now - this.lastWriteAt;
    this.lastWriteAt = now;
    const wall = this.clock.wallOf(h.timestamp, now);
    if (this.packets === 0 || now - this.lastSrAt >= SR_INTERVAL_MS) this.sendSr(h.ssrc, now, wall, h.timestamp);
    this.send(buf, packet.payload.length);
  }

  private send(buf: Buffer, payloadBytes: number): void {
    this.packets++;
    this.octets += payloadBytes;
    this.socket.send(buf, this.port, "127.0.0.1");
  }

  private sendSr(ssrc: number, now: number, wall: number, ts: number): void {
    this.lastSrAt = now;
    this.socket.send(senderReport(ssrc, wall, ts, this.packets, this.octets), this.port + 1, "127.0.0.1");
  }

  /** Starts sending to `port`: joins the fan-out waiting for a keyframe (which asks the publisher for one). */
  arm(port: number): void {
    this.disarm();
    this.port = port;
    this.armed = true;
    this.clock.reset();
    this.packets = 0;
    this.octets = 0;
    this.maxGapMs = 0;
    this.lastKeyframeAt = performance.now();
    this.burst = [];
    this.track.fanout.add(this, { waitForKeyframe: true });
    const burst = this.burst;
    this.burst = undefined;
    if (burst.length > 0) {
      // A replayed GOP: its last packet is the newest, so it is the one that maps to "now".
      const now = Date.now();
      this.sendSr(this.burstSsrc, now, this.clock.wallOf(this.burstTs, now), this.burstTs);
      for (const b of burst) this.send(b, b.length - 12);
    }
  }

  disarm(): void {
    if (!this.armed) return;
    this.armed = false;
    this.track.fanout.remove(this);
  }
}

export interface RoomEgressOptions {
  /** For the SDP file's s= line and temp dir name. */
  name: string;
  tracks: PublishedTrack[];
  /** Ask the publisher for a keyframe when a video track has gone this long without one (0 = never). */
  keyframeIntervalMs?: number;
  /** Where the temporary SDP directory is made (default os.tmpdir()). */
  tmpDir?: string;
}

/**
 * The RTP side of one FFmpeg reading a room. Hook it into a supervised job: `prepare` before each
 * start, `spawned` after each spawn, `exited` after each exit, `close` in cleanup.
 */
export class RoomEgress {
  readonly tracks: PublishedTrack[];
  private readonly sinks: EgressSink[];
  private readonly socket: dgram.Socket;
  private readonly dir: string;
  readonly sdpPath: string;
  private probeTimer: NodeJS.Timeout | undefined;
  private paceTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Times the sinks were armed (once per FFmpeg run that bound its ports). */
  armedCount = 0;
  /** ms from the last spawn until FFmpeg held its ports and the sinks were armed. */
  armDelayMs = 0;
  private spawnedAt = 0;

  constructor(private readonly opts: RoomEgressOptions) {
    this.tracks = opts.tracks.filter(egressable);
    if (this.tracks.length === 0) {
      const codecs = opts.tracks.map((t) => t.codecName).join(", ") || "no tracks";
      throw fail("unsupported_codec", `nothing to bridge (${codecs})`);
    }
    this.socket = dgram.createSocket("udp4");
    this.socket.on("error", () => undefined);
    this.sinks = this.tracks.map((t) => new EgressSink(t, this.socket));
    this.dir = mkdtempSync(path.join(opts.tmpDir ?? tmpdir(), "whipsfu-egress-"));
    this.sdpPath = path.join(this.dir, "room.sdp");
    const interval = opts.keyframeIntervalMs ?? 0;
    if (interval > 0) {
      this.paceTimer = setInterval(() => {
        const now = performance.now();
        for (const s of this.sinks) {
          if (s.track.kind === "video" && s.armed && now - s.lastKeyframeAt > interval) {
            s.track.keyframes.request();
            s.lastKeyframeAt = now; // one request per interval, not one per tick
          }
        }
      }, Math.min(500, interval));
      this.paceTimer.unref();
    }
  }

  get video(): PublishedTrack | undefined {
    return this.tracks.find((t) => t.kind === "video");
  }

  get audio(): PublishedTrack | undefined {
    return this.tracks.find((t) => t.kind === "audio");
  }

  /** FFmpeg input arguments (the supervisor puts the job's whitelist, file,udp,rtp, before -i). */
  inputArgs(): string[] {
    // Start as soon as the streams are known (a keyframe arrives first). Wait up to 0.5 s for a
    // missing packet (the SFU NACKs the publisher, retransmissions arrive late). A 2 MB socket
    // buffer (the kernel caps it at net.core.rmem_max) rides out a few seconds of FFmpeg being
    // starved of CPU: a lost video packet costs everything up to the next keyframe.
    return [
      "-analyzeduration", "1000000",
      "-probesize", "1000000",
      "-max_delay", "500000",
      "-buffer_size", String(2 * 1024 * 1024),
      "-i", this.sdpPath,
    ];
  }

  /** Per track, what was sent to the current FFmpeg run. */
  stats(): { kind: string; packets: number; bytes: number; maxGapMs: number; clockJumps: number; armDelayMs: number }[] {
    return this.sinks.map((s) => ({
      kind: s.track.kind,
      packets: s.packets,
      bytes: s.octets,
      maxGapMs: s.maxGapMs,
      clockJumps: s.clockJumps,
      armDelayMs: this.armDelayMs,
    }));
  }

  /** Before each FFmpeg start: fresh ports, the SDP written. */
  async prepare(): Promise<void> {
    this.disarm();
    const specs: SdpTrack[] = [];
    for (const t of this.tracks) {
      specs.push({
        kind: t.kind,
        codecName: t.codecName,
        payloadType: t.codec.payloadType,
        clockRate: t.codec.clockRate,
        channels: t.codec.channels,
        fmtp: t.codec.fmtp,
        port: await freePortPair(),
      });
    }
    if (this.closed) return;
    writeFileSync(this.sdpPath, buildEgressSdp(this.opts.name, specs), { mode: 0o600 });
    specs.forEach((s, i) => (this.sinks[i].port = s.port));
  }

  /** After a spawn: arm the sinks once FFmpeg has bound every RTCP port (it binds RTP first). */
  spawned(): void {
    clearInterval(this.probeTimer);
    const started = performance.now();
    this.spawnedAt = started;
    const check = (): void => {
      if (this.closed) return;
      const bound = boundUdpPorts();
      const ready = bound ? this.sinks.every((s) => bound.has(s.port + 1)) : performance.now() - started > 1000;
      if (ready || performance.now() - started > 10_000) {
        clearInterval(this.probeTimer);
        this.probeTimer = undefined;
        this.arm();
      }
    };
    this.probeTimer = setInterval(check, 25);
  }

  private arm(): void {
    this.armedCount++;
    this.armDelayMs = Math.round(performance.now() - this.spawnedAt);
    for (const s of this.sinks) s.arm(s.port);
  }

  private disarm(): void {
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    for (const s of this.sinks) s.disarm();
  }

  /** After each FFmpeg exit: stop sending into a closed port. */
  exited(): void {
    this.disarm();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.disarm();
    clearInterval(this.paceTimer);
    try {
      this.socket.close();
    } catch {
      // never bound
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
