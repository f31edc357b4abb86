// Messages between the server and its fan-out worker processes (FORWARD_WORKERS). One IPC message
// carries everything queued in one turn of the server's event loop, in order: packets (each once,
// with the viewers it goes to) and NACKed sequence numbers. Sockets travel as IPC handles, so a
// worker holds its own descriptor of a viewer's socket and sends from the same address and port.
import type { MediaKind } from "./sdp.js";
import type { OutboundIdentity } from "./outbound.js";
import type { SrtpSessionKeys } from "./srtp.js";

export interface AddOutput {
  type: "add";
  id: number;
  track: number;
  kind: MediaKind;
  identity: OutboundIdentity;
  keys: SrtpSessionKeys;
  extensionIds: Uint8Array;
  address: string;
  port: number;
}

/** The viewer's nominated pair changed (ICE restart, a new network): the socket handle comes with it. */
export interface NewPath {
  type: "path";
  id: number;
  address: string;
  port: number;
}

export interface RemoveOutput {
  type: "remove";
  id: number;
}

export interface PacketItem {
  track: number;
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
  /** Stored extension elements (history.ts form), or null. */
  extensions: Uint8Array | null;
  /** Output ids it goes to. */
  to: number[];
}

export interface NackItem {
  id: number;
  sequenceNumbers: number[];
}

export interface Batch {
  type: "batch";
  items: (PacketItem | NackItem)[];
}

/** Asks for the worker's counters; answered with WorkerCounters. */
export interface CountersRequest {
  type: "counters";
}

export type ToWorker = AddOutput | NewPath | RemoveOutput | Batch | CountersRequest;

/** Worker → server: an output it could not set up or keep (its viewer is then ended). */
export interface OutputFailed {
  type: "failed";
  id: number;
  message: string;
}

export interface WorkerCounters {
  type: "counters";
  /** Packets protected and handed to a socket, retransmissions included, since the worker started. */
  sent: number;
  outputs: number;
}

/** Sent once at start: whether this Node lets the worker stop reading a passed socket. */
export interface WorkerReady {
  type: "ready";
  ok: boolean;
  message?: string;
}

export type FromWorker = OutputFailed | WorkerCounters | WorkerReady;

export function isNack(item: PacketItem | NackItem): item is NackItem {
  return (item as NackItem).sequenceNumbers !== undefined;
}
