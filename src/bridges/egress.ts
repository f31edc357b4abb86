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
//   GOP cache of an ingest room), so FFmpeg starts on a keyframe (ports: udp-ports.ts, the SDP:
//   egress-sdp.ts).
// - Before a track's first packet and then every second, the sink sends FFmpeg an RTCP sender
//   report mapping the packet's RTP timestamp to the wall clock it arrived at. FFmpeg's RTP
//   demuxer then places audio and video on one timeline (without it each stream starts at 0, and
//   video, which waits for a keyframe, would come out early by that wait; sender-clock.ts).
// - Optional keyframe pacing: when a copied H.264 track has gone longer than N ms without a
//   keyframe, the publisher is asked for one, so HLS segments and RTMP GOPs stay short with
//   browsers that only send keyframes on request.

import dgram from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { RtpPacket } from "werift";
import { fail } from "../errors.js";
import type { PacketSink } from "../sfu/forward.js";
import { startsKeyframe } from "../media/keyframe.js";
import type { PublishedTrack } from "../sfu/publisher.js";
import { buildEgressSdp, egressable, type SdpTrack } from "./egress-sdp.js";
import { senderReport, SenderClock } from "./sender-clock.js";
import { boundUdpPorts, freePortPair } from "./udp-ports.js";

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
      this.paceTimer = setInterval(
        () => {
          const now = performance.now();
          for (const s of this.sinks) {
            if (s.track.kind === "video" && s.armed && now - s.lastKeyframeAt > interval) {
              s.track.keyframes.request();
              s.lastKeyframeAt = now; // one request per interval, not one per tick
            }
          }
        },
        Math.min(500, interval),
      );
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
    return ["-analyzeduration", "1000000", "-probesize", "1000000", "-max_delay", "500000", "-buffer_size", String(2 * 1024 * 1024), "-i", this.sdpPath];
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
    specs.forEach((s, i) => {
      this.sinks[i].port = s.port;
    });
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
