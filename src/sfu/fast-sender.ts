// A subscriber's outgoing track without werift's per-packet send path (which deserializes or
// clones every packet, merges header extensions and awaits a promise per packet): the header is
// rewritten in one reused object, SRTP-protected with the session's keys, and written straight to
// the nominated pair's UDP socket (outbound.ts), here or in a fan-out worker process
// (fanout-workers.ts). werift still owns ICE, DTLS, RTCP and the SRTP keys; what this reads of
// them beyond werift's public API comes through werift-adapter.ts.
import type { RTCDtlsTransport, RTCRtpSender, RtpPacket } from "werift";
import { ntpTimestamp } from "../media/ntp.js";
import type { PacketSink } from "./forward.js";
import type { PacketHistory } from "./history.js";
import { OutboundStream, type OutboundIdentity, type ViewerOutput } from "./outbound.js";
import { nackedSequences } from "./sequence.js";
import { SrtpProtector, type SrtpSessionKeys } from "./srtp.js";
import {
  localSrtpKeys,
  nominatedPath,
  rtxOf,
  sendOverIce,
  setSenderReport,
  startSenderReports,
  weriftProtect,
  type SendPath,
} from "./werift-adapter.js";

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
  private readonly output: ViewerOutput;
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
    this.output =
      (protector && remote?.outputs.attach({ identity, keys, history, extensionIds, path: this.path, onLost: remote.onLost })) ??
      new OutboundStream(identity, history, extensionIds, protector ? protector.protect.bind(protector) : weriftProtect(dtls), (data) => this.send(data));
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

  write(packet: RtpPacket): void {
    const src = packet.header;
    const payload = packet.payload;
    this.output.write(src.sequenceNumber, src.timestamp, src.marker, payload);
    this.lastTimestamp = src.timestamp;
    this.lastSentMs = Date.now();
    this.sent++;
    this.octets += payload.length;
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
