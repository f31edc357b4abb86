// One viewer's outgoing stream of one track, per packet: header written from the forwarded
// packet's fields, this viewer's header-extension block rewritten from the track's history,
// SRTP protect, send. Retransmissions come from the same history, plain or as RTX (RFC 4588).
// No werift here: the same code runs in the server (FastSender) and in a fan-out worker process.
import { seqAdd } from "../media/sequence.js";
import { EXTENSION_BLOCK_BYTES, writeExtensionBlock } from "./extensions.js";
import type { PacketHistory } from "./history.js";
import type { PlainHeader } from "./srtp.js";

/** What a viewer's sender negotiated: its SSRC and payload type, and its RTX stream's when it has one. */
export interface OutboundIdentity {
  payloadType: number;
  ssrc: number;
  rtxPayloadType?: number;
  rtxSsrc?: number;
}

/** SRTP protect of a header, payload and a ready extension block (`extensionLength` 0: none). */
export type Protect = (h: PlainHeader, payload: Uint8Array, extension: Uint8Array, extensionLength: number) => Buffer;

/** Where FastSender hands a viewer's packets: an OutboundStream here, or one in a worker process. */
export interface ViewerOutput {
  write(sequenceNumber: number, timestamp: number, marker: boolean, payload: Uint8Array): void;
  /** False when the packet is no longer in the history. */
  resend(sequenceNumber: number): boolean;
  close(): void;
}

export class OutboundStream implements ViewerOutput {
  private readonly header: PlainHeader;
  /** Header of retransmissions: the original SSRC, or the RTX stream's when RTX was negotiated. */
  private readonly resendHeader: PlainHeader;
  private readonly rtx: boolean;
  private rtxSequence = Math.floor(Math.random() * 0x10000);
  /** This viewer's extension block of the packet being sent. */
  private readonly extensionBlock = Buffer.alloc(EXTENSION_BLOCK_BYTES);

  constructor(
    identity: OutboundIdentity,
    /** The track's packets, kept once for all its viewers. */
    private readonly history: PacketHistory,
    /** Forwarded extension index → this viewer's id (extensions.ts targetIds). */
    private readonly extensionIds: Uint8Array,
    private readonly protect: Protect,
    private readonly send: (data: Buffer) => void,
  ) {
    this.header = { payloadType: identity.payloadType, ssrc: identity.ssrc, marker: false, sequenceNumber: 0, timestamp: 0 };
    this.rtx = identity.rtxPayloadType !== undefined && identity.rtxSsrc !== undefined;
    this.resendHeader = this.rtx
      ? { payloadType: identity.rtxPayloadType!, ssrc: identity.rtxSsrc!, marker: false, sequenceNumber: 0, timestamp: 0 }
      : { ...this.header };
  }

  write(sequenceNumber: number, timestamp: number, marker: boolean, payload: Uint8Array): void {
    const h = this.header;
    h.marker = marker;
    h.sequenceNumber = sequenceNumber;
    h.timestamp = timestamp;
    this.send(this.protect(h, payload, this.extensionBlock, this.extensionsOf(sequenceNumber)));
  }

  /**
   * Sends a NACKed packet again from the history, with its extensions: plain (the same index and
   * content give the same SRTP bytes), or as RTX (OSN + payload). False when it is no longer kept.
   */
  resend(sequenceNumber: number): boolean {
    const slot = this.history.find(sequenceNumber);
    const stored = slot < 0 ? undefined : this.history.read(slot);
    if (!stored) return false;
    const h = this.resendHeader;
    h.marker = stored.marker;
    h.timestamp = stored.timestamp;
    let payload = stored.payload;
    if (this.rtx) {
      payload = Buffer.allocUnsafe(2 + stored.payload.length);
      payload.writeUInt16BE(sequenceNumber, 0);
      stored.payload.copy(payload, 2);
      h.sequenceNumber = this.rtxSequence;
      this.rtxSequence = seqAdd(this.rtxSequence, 1);
    } else {
      h.sequenceNumber = sequenceNumber;
    }
    this.send(this.protect(h, payload, this.extensionBlock, this.extensionsOf(sequenceNumber)));
    return true;
  }

  /** Nothing of its own to release: the history belongs to the track, the socket to the peer. */
  close(): void {}

  /** Writes this viewer's extension block for a packet the history holds; returns its length (0: none). */
  private extensionsOf(sequenceNumber: number): number {
    const history = this.history;
    const slot = history.find(sequenceNumber);
    if (slot < 0) return 0;
    const length = history.extensionLength(slot);
    if (length === 0) return 0;
    return writeExtensionBlock(history.extensionBytes, history.extensionOffset(slot), length, this.extensionIds, this.extensionBlock);
  }
}
