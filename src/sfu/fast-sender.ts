// A subscriber's outgoing track without werift's per-packet send path (which deserializes or
// clones every packet, merges header extensions and awaits a promise per packet): the header is
// rewritten in one reused object, SRTP-protected with the session's keys, and written straight to
// the nominated pair's UDP socket (outbound.ts), here or in a fan-out worker process
// (fanout-workers.ts). werift still owns ICE, DTLS, RTCP and the SRTP keys.
import type dgram from "node:dgram";
import { RtpHeader, type RTCDtlsTransport, type RTCRtpSender, type RtpPacket } from "werift";
import { ntpTimestamp } from "../media/ntp.js";
import type { PacketSink } from "./forward.js";
import type { PacketHistory } from "./history.js";
import { OutboundStream, type OutboundIdentity, type Protect, type ViewerOutput } from "./outbound.js";
import { nackedSequences } from "./sequence.js";
import { SrtpProtector, type PlainHeader, type SrtpSessionKeys } from "./srtp.js";

/** werift sender fields its RTCP loop reads for sender reports; not public API, hence one typed view. */
interface SenderReportState {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  runRtcp(): Promise<void>;
}

/** The parts of werift's ICE candidate pair this path uses. */
export interface NominatedPair {
  remoteAddr: readonly [string, number];
  protocol: { type: string; transport?: { socket?: dgram.Socket } };
}

/** One viewer's track as a fan-out worker needs it. */
export interface RemoteOutputRequest {
  identity: OutboundIdentity;
  keys: SrtpSessionKeys;
  history: PacketHistory;
  extensionIds: Uint8Array;
  /** werift's nominated pair now (the same object until ICE picks another). */
  pair: () => NominatedPair | undefined;
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

/** werift's nominated candidate pair of a transport, if ICE has one. */
export function nominatedPair(dtls: RTCDtlsTransport): NominatedPair | undefined {
  return dtls.iceTransport.connection.nominated as unknown as NominatedPair | undefined;
}

/** A pair's UDP socket, or undefined for TCP and TURN pairs (werift frames those). */
export function udpSocketOf(pair: NominatedPair): dgram.Socket | undefined {
  return pair.protocol.type === "stun" ? pair.protocol.transport?.socket : undefined;
}

export class FastSender implements PacketSink {
  private readonly report: SenderReportState;
  private readonly output: ViewerOutput;
  private readonly timer: NodeJS.Timeout;
  private lastTimestamp = 0;
  private lastSentMs = 0;
  private sent = 0;
  private octets = 0;
  retransmitted = 0;

  constructor(
    sender: RTCRtpSender,
    private readonly dtls: RTCDtlsTransport,
    history: PacketHistory,
    extensionIds: Uint8Array,
    /** Given: the viewer's packets are protected and sent by a worker process when it can take them. */
    remote?: { outputs: RemoteOutputs; onLost: () => void },
  ) {
    const codec = sender.codec;
    if (!codec) throw new Error("sender has no negotiated codec");
    // werift keeps the negotiated RTX payload type private; rtxSsrc is public.
    const rtxPayloadType = (sender as unknown as { rtxPayloadType?: number }).rtxPayloadType;
    const identity: OutboundIdentity = {
      payloadType: codec.payloadType,
      ssrc: sender.ssrc,
      ...(rtxPayloadType !== undefined ? { rtxPayloadType, rtxSsrc: sender.rtxSsrc } : {}),
    };
    // The keys exist once DTLS is done, which is before the subscriber makes its senders.
    const keys = (dtls.srtp as unknown as { localContext: SrtpSessionKeys }).localContext;
    const protector = ownProtector(keys);
    this.output =
      (protector &&
        remote?.outputs.attach({ identity, keys, history, extensionIds, pair: () => nominatedPair(dtls), onLost: remote.onLost })) ??
      new OutboundStream(identity, history, extensionIds, protector ? protector.protect.bind(protector) : this.weriftProtect, (data) => this.send(data));
    this.report = sender as unknown as SenderReportState;
    sender.onGenericNack.subscribe((nack) => {
      for (const seq of nackedSequences(nack)) {
        nackStats.requested++;
        if (!this.output.resend(seq)) continue;
        this.retransmitted++;
        nackStats.retransmitted++;
      }
    });
    // Sender reports need the (NTP, RTP) pair of the newest packet; refreshing werift's copy a few
    // times a second keeps BigInt work off the per-packet path.
    this.timer = setInterval(() => this.refreshReport(), 250);
    this.timer.unref();
    void this.report.runRtcp();
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

  /** werift's encrypt, for an SRTP profile the own protect lacks; it takes extensions as elements. */
  private readonly weriftProtect: Protect = (h: PlainHeader, payload, extension, extensionLength) => {
    const header = new RtpHeader({ ...h, extensions: extensionLength === 0 ? [] : elementsOf(extension, extensionLength) });
    header.extension = header.extensions.length > 0;
    return this.dtls.srtp.encrypt(Buffer.from(payload.buffer, payload.byteOffset, payload.length), header);
  };

  private send(data: Buffer): void {
    const pair = nominatedPair(this.dtls);
    if (!pair) return;
    const socket = udpSocketOf(pair);
    if (socket) socket.send(data, pair.remoteAddr[1], pair.remoteAddr[0]);
    // TCP and TURN pairs frame or wrap the data: werift's own send does that.
    else this.dtls.iceTransport.connection.send(data).catch(() => undefined);
  }

  private refreshReport(): void {
    if (this.sent === 0) return;
    const r = this.report;
    r.ntpTimestamp = ntpTimestamp(this.lastSentMs);
    r.rtpTimestamp = this.lastTimestamp;
    r.packetCount = this.sent >>> 0;
    r.octetCount = this.octets >>> 0;
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

/** The elements of a one-byte-header block as werift's header holds them. */
function elementsOf(block: Uint8Array, length: number): { id: number; payload: Buffer }[] {
  const out: { id: number; payload: Buffer }[] = [];
  for (let p = 4; p < length; ) {
    const b = block[p]!;
    if (b === 0) {
      p++;
      continue;
    }
    const len = (b & 0x0f) + 1;
    out.push({ id: b >> 4, payload: Buffer.from(block.subarray(p + 1, p + 1 + len)) });
    p += 1 + len;
  }
  return out;
}
