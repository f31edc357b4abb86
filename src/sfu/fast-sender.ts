// A subscriber's outgoing track without werift's per-packet send path (which deserializes or
// clones every packet, merges header extensions and awaits a promise per packet): the header is
// rewritten in one reused object, SRTP-protected with the session's keys, and written straight to
// the nominated pair's UDP socket. werift still owns ICE, DTLS, RTCP and the SRTP keys.
import type dgram from "node:dgram";
import { RtpHeader, type GenericNack, type RTCDtlsTransport, type RTCRtpSender, type RtpPacket } from "werift";
import type { PacketSink } from "./forward.js";
import { nackedSequences } from "./sequence.js";
import { SrtpProtector, type SrtpSessionKeys } from "./srtp.js";

/** werift sender fields its RTCP loop reads for sender reports; not public API, hence one typed view. */
interface SenderReportState {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  runRtcp(): Promise<void>;
}

/** The parts of werift's ICE candidate pair this path uses. */
interface NominatedPair {
  remoteAddr: readonly [string, number];
  protocol: { type: string; transport?: { socket?: dgram.Socket } };
}

/**
 * Retransmission history, as a ring of fixed slots allocated up front: payloads are copied in
 * rather than kept as the Buffers werift handed over (thousands of retained Buffers per subscriber
 * were promoted to V8's old space and cost major GCs under load). Video: 2048 packets, over 1 s at
 * 5 Mbit/s of 1200-byte packets; audio: 512 packets, 10 s of Opus. Larger packets are not kept.
 */
const HISTORY = { video: { slots: 2048, bytes: 1500 }, audio: { slots: 512, bytes: 512 } } as const;
const NTP_EPOCH_OFFSET = 2208988800;

/** 64-bit NTP time of a wall-clock instant (RFC 3550 sender reports). */
function ntp(ms: number): bigint {
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms % 1000) / 1000) * 0x100000000);
  return (BigInt(seconds + NTP_EPOCH_OFFSET) << 32n) | BigInt(fraction);
}

/** Process-wide NACK counters of every FastSender, read by /metrics (plain numbers, no labels). */
export const nackStats = { requested: 0, retransmitted: 0 };

export class FastSender implements PacketSink {
  private readonly header: RtpHeader;
  private readonly slots: number;
  private readonly slotBytes: number;
  private readonly ring: Buffer;
  private readonly historyLength: Uint16Array;
  private readonly historySeq: Int32Array;
  private readonly historyTimestamp: Uint32Array;
  private readonly historyMarker: Uint8Array;
  /** Header of retransmissions: the original SSRC, or the RTX stream's when RTX was negotiated (RFC 4588). */
  private readonly resendHeader: RtpHeader;
  private readonly rtx: boolean;
  private rtxSequence = Math.floor(Math.random() * 0x10000);
  private readonly report: SenderReportState;
  /** Own SRTP protect with werift's session keys; null where the profile is one it does not do. */
  private protector: SrtpProtector | null | undefined;
  private readonly timer: NodeJS.Timeout;
  private lastTimestamp = 0;
  private lastSentMs = 0;
  private sent = 0;
  private octets = 0;
  retransmitted = 0;

  constructor(
    private readonly sender: RTCRtpSender,
    private readonly dtls: RTCDtlsTransport,
  ) {
    const codec = sender.codec;
    if (!codec) throw new Error("sender has no negotiated codec");
    this.header = new RtpHeader({ payloadType: codec.payloadType, ssrc: sender.ssrc });
    const size = codec.mimeType.toLowerCase().startsWith("audio/") ? HISTORY.audio : HISTORY.video;
    this.slots = size.slots;
    this.slotBytes = size.bytes;
    this.ring = Buffer.allocUnsafeSlow(size.slots * size.bytes);
    this.historyLength = new Uint16Array(size.slots);
    this.historySeq = new Int32Array(size.slots).fill(-1);
    this.historyTimestamp = new Uint32Array(size.slots);
    this.historyMarker = new Uint8Array(size.slots);
    // werift keeps the negotiated RTX payload type private; rtxSsrc is public.
    const rtxPayloadType = (sender as unknown as { rtxPayloadType?: number }).rtxPayloadType;
    this.rtx = rtxPayloadType !== undefined;
    this.resendHeader = rtxPayloadType !== undefined
      ? new RtpHeader({ payloadType: rtxPayloadType, ssrc: sender.rtxSsrc })
      : new RtpHeader({ payloadType: codec.payloadType, ssrc: sender.ssrc });
    this.report = sender as unknown as SenderReportState;
    sender.onGenericNack.subscribe((nack) => this.onNack(nack));
    // Sender reports need the (NTP, RTP) pair of the newest packet; refreshing werift's copy a few
    // times a second keeps BigInt work off the per-packet path.
    this.timer = setInterval(() => this.refreshReport(), 250);
    this.timer.unref();
    void this.report.runRtcp();
  }

  write(packet: RtpPacket): void {
    const src = packet.header;
    const h = this.header;
    h.marker = src.marker;
    h.sequenceNumber = src.sequenceNumber;
    h.timestamp = src.timestamp;
    const payload = packet.payload;
    this.send(this.protect(h, payload));
    // The plain payload is kept: a retransmission is protected again (the same index and content
    // give the same SRTP bytes), or wrapped as RTX under its own SSRC and sequence.
    const slot = src.sequenceNumber % this.slots;
    if (payload.length <= this.slotBytes) {
      payload.copy(this.ring, slot * this.slotBytes);
      this.historyLength[slot] = payload.length;
      this.historySeq[slot] = src.sequenceNumber;
      this.historyTimestamp[slot] = src.timestamp;
      this.historyMarker[slot] = src.marker ? 1 : 0;
    } else {
      this.historySeq[slot] = -1;
    }
    this.lastTimestamp = src.timestamp;
    this.lastSentMs = Date.now();
    this.sent++;
    this.octets += payload.length;
  }

  private protect(h: RtpHeader, payload: Buffer): Buffer {
    if (this.protector === undefined) {
      // The keys exist once DTLS is done, which is before the sender gets its first packet.
      const context = (this.dtls.srtp as unknown as { localContext: SrtpSessionKeys }).localContext;
      try {
        this.protector = new SrtpProtector(context);
      } catch {
        this.protector = null;
      }
    }
    return this.protector ? this.protector.protect(h, payload) : this.dtls.srtp.encrypt(payload, h);
  }

  private send(data: Buffer): void {
    const connection = this.dtls.iceTransport.connection;
    const pair = connection.nominated as unknown as NominatedPair | undefined;
    if (!pair) return;
    const socket = pair.protocol.type === "stun" ? pair.protocol.transport?.socket : undefined;
    if (socket) socket.send(data, pair.remoteAddr[1], pair.remoteAddr[0]);
    // TCP and TURN pairs frame or wrap the data: werift's own send does that.
    else connection.send(data).catch(() => undefined);
  }

  /** NACKed packets from the history: plain again, or as RTX (OSN + payload) when negotiated. */
  private onNack(nack: GenericNack): void {
    for (const seq of nackedSequences(nack)) {
      nackStats.requested++;
      const slot = seq % this.slots;
      if (this.historySeq[slot] !== seq) continue;
      const at = slot * this.slotBytes;
      const length = this.historyLength[slot]!;
      const h = this.resendHeader;
      h.marker = this.historyMarker[slot] === 1;
      h.timestamp = this.historyTimestamp[slot]!;
      let payload: Buffer;
      if (this.rtx) {
        payload = Buffer.allocUnsafe(2 + length);
        payload.writeUInt16BE(seq, 0);
        this.ring.copy(payload, 2, at, at + length);
        h.sequenceNumber = this.rtxSequence;
        this.rtxSequence = (this.rtxSequence + 1) & 0xffff;
      } else {
        payload = Buffer.from(this.ring.subarray(at, at + length));
        h.sequenceNumber = seq;
      }
      this.send(this.protect(h, payload));
      this.retransmitted++;
      nackStats.retransmitted++;
    }
  }

  private refreshReport(): void {
    if (this.sent === 0) return;
    const r = this.report;
    r.ntpTimestamp = ntp(this.lastSentMs);
    r.rtpTimestamp = this.lastTimestamp;
    r.packetCount = this.sent >>> 0;
    r.octetCount = this.octets >>> 0;
  }

  close(): void {
    clearInterval(this.timer);
    this.historySeq.fill(-1);
  }
}
