// A subscriber's outgoing track without werift's per-packet send path (which deserializes or
// clones every packet, merges header extensions and awaits a promise per packet): the header is
// rewritten in one reused object, SRTP-protected with the session's keys, and written straight to
// the nominated pair's UDP socket: by the native addon for all the track's viewers at once
// (native-output.ts, FORWARD_PATH=native), else in JavaScript (outbound.ts), here or in a fan-out
// worker process (fanout-workers.ts). werift still owns ICE, DTLS, RTCP and the SRTP keys; what
// this reads of them beyond werift's public API comes through werift-adapter.ts.
import type { RTCDtlsTransport, RTCRtpSender, RtpPacket } from "werift";
import { ntpTimestamp } from "../media/ntp.js";
import type { PacketBatch, PacketSink } from "./forward.js";
import type { PacketHistory } from "./history.js";
import { nativeForwarding, socketFd } from "./native.js";
import { NativeOutput, NativeTrack } from "./native-output.js";
import { OutboundStream, type OutboundIdentity, type ViewerOutput } from "./outbound.js";
import { nackedSequences } from "./sequence.js";
import { SrtpProtector, type SrtpSessionKeys } from "./srtp.js";
import { localSrtpKeys, nominatedPath, rtxOf, sendOverIce, setSenderReport, startSenderReports, weriftProtect, type SendPath } from "./werift-adapter.js";

/** One viewer's track as a fan-out worker needs it. */
export interface RemoteOutputRequest {
  identity: OutboundIdentity;
  keys: SrtpSessionKeys;
  history: PacketHistory;
  extensionIds: Uint8Array;
  /** The viewer's nominated path now (the same object until ICE picks another pair). */
  path: () => SendPath | undefined;
  /** Called when the worker can no longer send for the viewer (it died, or the pair became TCP). */
  onLost: () => void;
}

/** What a fan-out worker pool offers FastSender (fanout-workers.ts). */
export interface RemoteOutputs {
  /** A worker-side output for this viewer, or undefined when it cannot take it (then it stays here). */
  attach(o: RemoteOutputRequest): ViewerOutput | undefined;
}

/** Process-wide NACK counters of every FastSender, read by /metrics (plain numbers, no labels). */
export const nackStats = { requested: 0, retransmitted: 0 };

export class FastSender implements PacketSink {
  private readonly path: () => SendPath | undefined;
  private output: ViewerOutput;
  /** Set while the output is native: the path it sends on, to tell when ICE nominates another. */
  private nativePath: SendPath | undefined;
  readonly batch: PacketBatch | undefined;
  private readonly timer: NodeJS.Timeout;
  private lastTimestamp = 0;
  private lastSentMs = 0;
  private sent = 0;
  private octets = 0;

  constructor(
    private readonly sender: RTCRtpSender,
    private readonly dtls: RTCDtlsTransport,
    history: PacketHistory,
    extensionIds: Uint8Array,
    /** Given: the viewer's packets are protected and sent by a worker process when it can take them. */
    remote?: { outputs: RemoteOutputs; onLost: () => void },
    /** Whether to send through the native addon (FORWARD_PATH=native) when it can take this viewer. */
    native = false,
  ) {
    const codec = sender.codec;
    if (!codec) throw new Error("sender has no negotiated codec");
    const rtx = rtxOf(sender);
    const identity: OutboundIdentity = {
      payloadType: codec.payloadType,
      ssrc: sender.ssrc,
      ...(rtx ? { rtxPayloadType: rtx.payloadType, rtxSsrc: rtx.ssrc } : {}),
    };
    // The keys exist once DTLS is done, which is before the subscriber makes its senders.
    const keys = localSrtpKeys(dtls);
    const protector = ownProtector(keys);
    this.path = nominatedPath(dtls);
    const jsOutput = (): ViewerOutput =>
      new OutboundStream(identity, history, extensionIds, protector ? protector.protect.bind(protector) : weriftProtect(dtls), (data) => this.send(data));
    this.output =
      (protector && remote?.outputs.attach({ identity, keys, history, extensionIds, path: this.path, onLost: remote.onLost })) ??
      (native ? this.nativeOutput(identity, keys, history, extensionIds) : undefined) ??
      jsOutput();
    this.batch = this.output instanceof NativeOutput ? this.output.batch : undefined;
    this.jsOutput = jsOutput;
    sender.onGenericNack.subscribe((nack) => {
      for (const seq of nackedSequences(nack)) {
        nackStats.requested++;
        if (this.output.resend(seq)) nackStats.retransmitted++;
      }
    });
    // Sender reports need the (NTP, RTP) pair of the newest packet; refreshing werift's copy a few
    // times a second keeps BigInt work off the per-packet path.
    this.timer = setInterval(() => this.refreshReport(), 250);
    this.timer.unref();
    startSenderReports(sender);
  }

  private readonly jsOutput: () => ViewerOutput;

  write(packet: RtpPacket): void {
    if (this.nativePath !== undefined && this.path() !== this.nativePath) this.nativePathChanged();
    const src = packet.header;
    const payload = packet.payload;
    this.output.write(src.sequenceNumber, src.timestamp, src.marker, payload);
    this.lastTimestamp = src.timestamp;
    this.lastSentMs = Date.now();
    this.sent++;
    this.octets += payload.length;
  }

  /** The native output of this viewer, or undefined where the addon cannot take it (then JavaScript sends). */
  private nativeOutput(identity: OutboundIdentity, keys: SrtpSessionKeys, history: PacketHistory, extensionIds: Uint8Array): NativeOutput | undefined {
    const addon = nativeForwarding.addon;
    const path = this.path();
    const fd = path?.socket ? socketFd(path.socket) : undefined;
    if (!addon || !path || fd === undefined) return undefined;
    try {
      const output = NativeTrack.of(addon, history).output(identity, keys, extensionIds, { fd, address: path.address, port: path.port });
      this.nativePath = path;
      return output;
    } catch {
      return undefined;
    }
  }

  /**
   * ICE nominated another pair: the native output follows a UDP one; over TCP or TURN, which
   * werift frames, this viewer's packets go through JavaScript from now on.
   */
  private nativePathChanged(): void {
    const path = this.path();
    if (!path) return;
    const fd = path.socket ? socketFd(path.socket) : undefined;
    if (fd !== undefined && this.output instanceof NativeOutput) {
      try {
        this.output.setTarget({ fd, address: path.address, port: path.port });
        this.nativePath = path;
        return;
      } catch {
        // The socket is gone: JavaScript sends from here on.
      }
    }
    this.nativePath = undefined;
    this.output.close();
    this.output = this.jsOutput();
  }

  private send(data: Buffer): void {
    const path = this.path();
    if (!path) return;
    if (path.socket) path.socket.send(data, path.port, path.address);
    // TCP and TURN pairs frame or wrap the data: werift's own send does that.
    else sendOverIce(this.dtls, data);
  }

  private refreshReport(): void {
    if (this.sent === 0) return;
    setSenderReport(this.sender, ntpTimestamp(this.lastSentMs), this.lastTimestamp, this.sent >>> 0, this.octets >>> 0);
  }

  close(): void {
    clearInterval(this.timer);
    this.output.close();
  }
}

function ownProtector(keys: SrtpSessionKeys): SrtpProtector | undefined {
  try {
    return new SrtpProtector(keys);
  } catch {
    return undefined;
  }
}
