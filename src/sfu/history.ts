// The last packets of one forwarded track, kept once for all of its viewers: what a viewer NACKs
// is resent from here, and its forwarded header extensions are read from here when a packet goes
// out. The packets every viewer of a track gets are the same (same sequence numbers once the
// fan-out has renumbered them), so one copy per track replaces one per viewer: 3 MiB less per
// video viewer, and one payload copy per packet instead of one per viewer.
//
// Storage is allocated up front in fixed slots and returned to a small pool on close: rings of a
// few MiB freed and allocated again as sessions churn fragment the C heap, whose resident size
// then only grows (the soak's RSS did, by 14 %, with one ring per viewer).
import type { RtpPacket } from "werift";
import type { MediaKind } from "./sdp.js";
import { storeExtensions, STORED_EXTENSION_BYTES } from "./extensions.js";

/** Video: 2048 packets, over 1 s at 5 Mbit/s of 1200-byte packets; audio: 512, 10 s of Opus. Larger packets are not kept. */
const SIZES = { video: { slots: 2048, bytes: 1500 }, audio: { slots: 512, bytes: 512 } } as const;
/** Free storage kept per kind for the next track; the rest goes back to the allocator. */
const POOL_LIMIT = 8;

interface Storage {
  payloads: Buffer;
  extensions: Buffer;
  length: Uint16Array;
  extensionLength: Uint8Array;
  sequence: Int32Array;
  timestamp: Uint32Array;
  marker: Uint8Array;
}

const pool: Record<MediaKind, Storage[]> = { audio: [], video: [] };

function take(kind: MediaKind): Storage {
  const reused = pool[kind].pop();
  if (reused) return reused;
  const { slots, bytes } = SIZES[kind];
  // Written through once (fill) so a ring is resident from the start: left untouched, its pages
  // became resident one by one as later sessions first wrote each slot, and the process's RSS
  // crept up by megabytes over hours with nothing leaking.
  return {
    payloads: Buffer.allocUnsafeSlow(slots * bytes).fill(0),
    extensions: Buffer.allocUnsafeSlow(slots * STORED_EXTENSION_BYTES).fill(0),
    length: new Uint16Array(slots),
    extensionLength: new Uint8Array(slots),
    sequence: new Int32Array(slots),
    timestamp: new Uint32Array(slots),
    marker: new Uint8Array(slots),
  };
}

export class PacketHistory {
  readonly slots: number;
  readonly slotBytes: number;
  private storage: Storage | undefined;
  /** Publisher extension id → forwarded index (see extensions.ts); all zero until negotiated. */
  private indexes: Uint8Array = new Uint8Array(256);

  constructor(readonly kind: MediaKind) {
    this.slots = SIZES[kind].slots;
    this.slotBytes = SIZES[kind].bytes;
    this.storage = take(kind);
    // A reused ring must not answer for another track's sequence numbers.
    this.storage.sequence.fill(-1);
  }

  /** The publisher's negotiated extension ids, as sourceIndexes() maps them. */
  setSourceExtensions(indexes: Uint8Array): void {
    this.indexes = indexes;
  }

  /** Keeps a packet under its (forwarded) sequence number. */
  put(packet: RtpPacket): void {
    const s = this.storage;
    if (!s) return;
    const header = packet.header;
    const slot = this.store(s, header.sequenceNumber, header.timestamp, header.marker, packet.payload);
    if (slot < 0) return;
    s.extensionLength[slot] =
      header.extensions.length === 0 ? 0 : storeExtensions(header.extensions, this.indexes, s.extensions, slot * STORED_EXTENSION_BYTES);
  }

  /** Keeps a packet whose extensions are already in stored form (another history's copyStoredExtensions). */
  putStored(sequenceNumber: number, timestamp: number, marker: boolean, payload: Uint8Array, extensions: Uint8Array | null): void {
    const s = this.storage;
    if (!s) return;
    const slot = this.store(s, sequenceNumber, timestamp, marker, payload);
    if (slot < 0) return;
    const length = extensions ? Math.min(extensions.length, STORED_EXTENSION_BYTES) : 0;
    if (length > 0) s.extensions.set(extensions!.subarray(0, length), slot * STORED_EXTENSION_BYTES);
    s.extensionLength[slot] = length;
  }

  private store(s: Storage, sequenceNumber: number, timestamp: number, marker: boolean, payload: Uint8Array): number {
    const slot = sequenceNumber % this.slots;
    if (payload.length > this.slotBytes) {
      s.sequence[slot] = -1;
      return -1;
    }
    s.payloads.set(payload, slot * this.slotBytes);
    s.length[slot] = payload.length;
    s.sequence[slot] = sequenceNumber;
    s.timestamp[slot] = timestamp;
    s.marker[slot] = marker ? 1 : 0;
    return slot;
  }

  /** The slot holding this sequence number, or -1 (never kept, overwritten, or closed). */
  find(sequenceNumber: number): number {
    const s = this.storage;
    if (!s) return -1;
    const slot = sequenceNumber % this.slots;
    return s.sequence[slot] === sequenceNumber ? slot : -1;
  }

  /** The stored extension elements of a found slot: the buffer, where they start and their length. */
  get extensionBytes(): Buffer {
    return this.storage?.extensions ?? EMPTY;
  }

  extensionOffset(slot: number): number {
    return slot * STORED_EXTENSION_BYTES;
  }

  extensionLength(slot: number): number {
    return this.storage?.extensionLength[slot] ?? 0;
  }

  /** A copy of the stored extension elements of the packet with this sequence number, or null if it has none. */
  copyStoredExtensions(sequenceNumber: number): Buffer | null {
    const s = this.storage;
    const slot = this.find(sequenceNumber);
    if (!s || slot < 0 || s.extensionLength[slot] === 0) return null;
    const at = slot * STORED_EXTENSION_BYTES;
    return Buffer.from(s.extensions.subarray(at, at + s.extensionLength[slot]!));
  }

  /** Copies of a found slot's fields, for a retransmission. */
  read(slot: number): { payload: Buffer; timestamp: number; marker: boolean } | undefined {
    const s = this.storage;
    if (!s) return undefined;
    const at = slot * this.slotBytes;
    return { payload: s.payloads.subarray(at, at + s.length[slot]!), timestamp: s.timestamp[slot]!, marker: s.marker[slot] === 1 };
  }

  /** Returns the storage to the pool; every later find() answers -1, so nothing stale is resent. */
  close(): void {
    const s = this.storage;
    if (!s) return;
    this.storage = undefined;
    if (pool[this.kind].length < POOL_LIMIT) pool[this.kind].push(s);
  }
}

const EMPTY = Buffer.alloc(0);
