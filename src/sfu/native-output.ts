// Viewers' outputs on the native path (FORWARD_PATH=native): one NativeTrack per forwarded track
// in this process gathers a packet's viewers as the fan-out hands it to them, then writes,
// protects and sends all of them in one call into the addon (native.ts), one sendmmsg(2) per
// socket. No werift here: the server (FastSender) and fan-out workers (fanout-worker.ts) use it.
import type { PacketBatch } from "./forward.js";
import type { PacketHistory } from "./history.js";
import type { NativeAddon, NativeGroup } from "./native.js";
import type { OutboundIdentity, ViewerOutput } from "./outbound.js";
import type { SrtpSessionKeys } from "./srtp.js";

/** Where an output's packets go: a UDP socket's descriptor and the viewer's address. */
export interface NativeTarget {
  fd: number;
  address: string;
  port: number;
}

/** Process-wide counters of the native path, for /metrics: packets the kernel took, packets dropped (full send buffer, errors). */
export const nativeStats = { sent: 0, dropped: 0 };

const tracks = new WeakMap<PacketHistory, NativeTrack>();

/** The outputs of one track in this process, and the packet being gathered for them. */
export class NativeTrack implements PacketBatch {
  readonly group: NativeGroup;
  private users = 0;
  private slots = new Int32Array(16);
  private count = 0;
  private payload: Uint8Array | undefined;
  private sequenceNumber = 0;
  private timestamp = 0;
  private marker = false;

  private constructor(
    addon: NativeAddon,
    readonly history: PacketHistory,
  ) {
    this.group = new addon.Group();
  }

  /** The track's NativeTrack in this process, made on first use. */
  static of(addon: NativeAddon, history: PacketHistory): NativeTrack {
    let track = tracks.get(history);
    if (!track) {
      track = new NativeTrack(addon, history);
      tracks.set(history, track);
    }
    return track;
  }

  /** A viewer's output; throws (an unsupported SRTP profile, a socket that is gone) where the addon cannot take it. */
  output(identity: OutboundIdentity, keys: SrtpSessionKeys, extensionIds: Uint8Array, target: NativeTarget): NativeOutput {
    const rtx = identity.rtxPayloadType !== undefined && identity.rtxSsrc !== undefined;
    const slot = this.group.add(
      target.fd,
      target.address,
      target.port,
      identity.ssrc >>> 0,
      identity.payloadType,
      rtx ? identity.rtxSsrc! >>> 0 : -1,
      rtx ? identity.rtxPayloadType! : 0,
      Math.floor(Math.random() * 0x10000),
      extensionIds,
      keys.profile,
      keys.srtpSessionKey,
      keys.srtpSessionSalt,
      keys.srtpSessionAuthTag ?? null,
    );
    this.users++;
    return new NativeOutput(this, slot);
  }

  /** Adds a viewer to the packet being gathered; a different packet sends the gathered one first. */
  queue(slot: number, sequenceNumber: number, timestamp: number, marker: boolean, payload: Uint8Array): void {
    if (this.count > 0 && payload !== this.payload) this.flush();
    if (this.count === this.slots.length) {
      const grown = new Int32Array(this.slots.length * 2);
      grown.set(this.slots);
      this.slots = grown;
    }
    this.slots[this.count++] = slot;
    this.payload = payload;
    this.sequenceNumber = sequenceNumber;
    this.timestamp = timestamp;
    this.marker = marker;
  }

  /** Sends the gathered packet to its viewers, each under its own header and SRTP context. */
  flush(): void {
    const count = this.count;
    if (count === 0) return;
    this.count = 0;
    const payload = this.payload!;
    this.payload = undefined;
    const history = this.history;
    const found = history.find(this.sequenceNumber);
    const extensionLength = found < 0 ? 0 : history.extensionLength(found);
    let sent = 0;
    try {
      sent = this.group.send(
        this.slots,
        count,
        payload,
        this.sequenceNumber,
        this.timestamp,
        this.marker,
        extensionLength === 0 ? null : history.extensionBytes,
        extensionLength === 0 ? 0 : history.extensionOffset(found),
        extensionLength,
      );
    } catch {
      // A packet the addon refuses (larger than it takes) is dropped: the fan-out must not throw.
    }
    nativeStats.sent += sent;
    nativeStats.dropped += count - sent;
  }

  /** A NACKed packet from the history, plain or as RTX; false when it is no longer kept. */
  resend(slot: number, sequenceNumber: number): boolean {
    const history = this.history;
    const found = history.find(sequenceNumber);
    const stored = found < 0 ? undefined : history.read(found);
    if (!stored) return false;
    // What was gathered goes first: a resend must not overtake the packet it follows.
    this.flush();
    const extensionLength = history.extensionLength(found);
    const ok = this.group.resend(
      slot,
      stored.payload,
      sequenceNumber,
      stored.timestamp,
      stored.marker,
      extensionLength === 0 ? null : history.extensionBytes,
      extensionLength === 0 ? 0 : history.extensionOffset(found),
      extensionLength,
    );
    if (ok) nativeStats.sent++;
    else nativeStats.dropped++;
    return true;
  }

  release(slot: number): void {
    this.flush();
    this.group.remove(slot);
    if (--this.users > 0) return;
    this.group.close();
    tracks.delete(this.history);
  }
}

/** One viewer's output of one track on the native path; closed once, never reused. */
export class NativeOutput implements ViewerOutput {
  private closed = false;

  constructor(
    readonly track: NativeTrack,
    readonly slot: number,
  ) {}

  /** The fan-out's batch: it sends what write gathered once every viewer of the packet has it. */
  get batch(): PacketBatch {
    return this.track;
  }

  write(sequenceNumber: number, timestamp: number, marker: boolean, payload: Uint8Array): void {
    if (this.closed) return;
    this.track.queue(this.slot, sequenceNumber, timestamp, marker, payload);
  }

  resend(sequenceNumber: number): boolean {
    if (this.closed) return false;
    return this.track.resend(this.slot, sequenceNumber);
  }

  /** The viewer's nominated pair changed to another UDP socket or address. */
  setTarget(target: NativeTarget): void {
    if (this.closed) return;
    this.track.flush();
    this.track.group.setPath(this.slot, target.fd, target.address, target.port);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.track.release(this.slot);
  }
}
