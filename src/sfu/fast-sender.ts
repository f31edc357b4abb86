// A subscriber's outgoing track without werift's per-packet send path (which deserializes or
// clones every packet, merges header extensions and awaits a promise per packet): the header is
// rewritten in one reused object, SRTP-protected with the session's keys, and written straight to
// the nominated pair's UDP socket. werift still owns ICE, DTLS, RTCP and the SRTP keys.
import type dgram from "node:dgram";
import { RtpHeader, type GenericNack, type RTCDtlsTransport, type RTCRtpSender, type RtpPacket } from "werift";
import type { PacketSink } from "./forward.js";
import { EXTENSION_BLOCK_BYTES, writeExtensionBlock } from "./extensions.js";
import type { PacketHistory } from "./history.js";
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
  /** This viewer's header-extension block of the packet being sent, rewritten from the history's copy. */
  private readonly extensionBlock = Buffer.alloc(EXTENSION_BLOCK_BYTES);
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
    /** The track's packets, kept once for all its viewers: NACKs are answered from it. */
    private readonly history: PacketHistory,
    /** Forwarded extension index → this viewer's id (extensions.ts targetIds). */
    private readonly extensionIds: Uint8Array,
  ) {
    const codec = sender.codec;
    if (!codec) throw new Error("sender has no negotiated codec");
    this.header = new RtpHeader({ payloadType: codec.payloadType, ssrc: sender.ssrc });
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
    this.send(this.protect(h, payload, this.extensionsOf(src.sequenceNumber)));
    this.lastTimestamp = src.timestamp;
    this.lastSentMs = Date.now();
    this.sent++;
    this.octets += payload.length;
  }

  /** Writes this viewer's extension block for a packet the history holds; returns its length (0: none). */
  private extensionsOf(sequenceNumber: number): number {
    const history = this.history;
    const slot = history.find(sequenceNumber);
    if (slot < 0) return 0;
    const length = history.extensionLength(slot);
    if (length === 0) return 0;
    return writeExtensionBlock(history.extensionBytes, history.extensionOffset(slot), length, this.extensionIds, this.extensionBlock);
  }

  private protect(h: RtpHeader, payload: Buffer, extensionLength: number): Buffer {
    if (this.protector === undefined) {
      // The keys exist once DTLS is done, which is before the sender gets its first packet.
      const context = (this.dtls.srtp as unknown as { localContext: SrtpSessionKeys }).localContext;
      try {
        this.protector = new SrtpProtector(context);
      } catch {
        this.protector = null;
      }
    }
    if (this.protector) return this.protector.protect(h, payload, this.extensionBlock, extensionLength);
    // werift's encrypt takes extensions as elements: only for a profile the own protect lacks.
    h.extensions = extensionLength === 0 ? [] : elementsOf(this.extensionBlock, extensionLength);
    h.extension = h.extensions.length > 0;
    return this.dtls.srtp.encrypt(payload, h);
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

  /**
   * NACKed packets from the history, with their extensions: plain again (the same index and
   * content give the same SRTP bytes), or as RTX (OSN + payload) when negotiated.
   */
  private onNack(nack: GenericNack): void {
    for (const seq of nackedSequences(nack)) {
      nackStats.requested++;
      const slot = this.history.find(seq);
      const stored = slot < 0 ? undefined : this.history.read(slot);
      if (!stored) continue;
      const h = this.resendHeader;
      h.marker = stored.marker;
      h.timestamp = stored.timestamp;
      let payload = stored.payload;
      if (this.rtx) {
        payload = Buffer.allocUnsafe(2 + stored.payload.length);
        payload.writeUInt16BE(seq, 0);
        stored.payload.copy(payload, 2);
        h.sequenceNumber = this.rtxSequence;
        this.rtxSequence = (this.rtxSequence + 1) & 0xffff;
      } else {
        h.sequenceNumber = seq;
      }
      this.send(this.protect(h, payload, this.extensionsOf(seq)));
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
  }
}

/** The elements of a one-byte-header block as werift's header holds them. */
function elementsOf(block: Buffer, length: number): { id: number; payload: Buffer }[] {
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
