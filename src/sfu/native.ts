// The native forwarding addon (native/src/forward.cc), loaded once with a fallback: where it was
// not built (no compiler at `npm install`, another OS) or does not load, the JavaScript fast path
// runs and `nativeForwarding.reason` says why. Also the one place that reads a Node internal for
// it: a dgram socket's descriptor, which sendmmsg(2) needs and Node has no public call for.
import dgram from "node:dgram";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** One track's outputs in this process, as the addon holds them (native/src/forward.cc says what each does). */
export interface NativeGroup {
  /** rtxSsrc -1: no RTX; fd -1: no socket (protect only). Returns the output's slot. */
  add(
    fd: number,
    address: string,
    port: number,
    ssrc: number,
    payloadType: number,
    rtxSsrc: number,
    rtxPayloadType: number,
    rtxSequence: number,
    extensionIds: Uint8Array,
    profile: number,
    key: Uint8Array,
    salt: Uint8Array,
    authKey: Uint8Array | null,
  ): number;
  setPath(slot: number, fd: number, address: string, port: number): void;
  remove(slot: number): void;
  /** Writes, protects and sends one packet to `slots[0..count)`; returns the packets the kernel took. */
  send(
    slots: Int32Array,
    count: number,
    payload: Uint8Array,
    sequenceNumber: number,
    timestamp: number,
    marker: boolean,
    extensions: Uint8Array | null,
    extensionOffset: number,
    extensionLength: number,
  ): number;
  /** A NACKed packet again, as RTX when the output has it. */
  resend(
    slot: number,
    payload: Uint8Array,
    sequenceNumber: number,
    timestamp: number,
    marker: boolean,
    extensions: Uint8Array | null,
    extensionOffset: number,
    extensionLength: number,
  ): boolean;
  /** What send (or resend, `retransmission`) would put on the wire, not sent. */
  protect(
    slot: number,
    payload: Uint8Array,
    sequenceNumber: number,
    timestamp: number,
    marker: boolean,
    extensions: Uint8Array | null,
    extensionOffset: number,
    extensionLength: number,
    retransmission: boolean,
  ): Buffer;
  stats(): { outputs: number; sent: number; dropped: number };
  close(): void;
}

export interface NativeAddon {
  Group: new () => NativeGroup;
  version: number;
}

const BUILT = path.join("native", "build", "Release", "whipsfu_forward.node");

/**
 * The built addon: WHIPSFU_NATIVE_ADDON names another build (the AddressSanitizer one of `npm run
 * test:native`); else native/build/ of the checkout this module is in (src/sfu or dist/sfu), or of
 * the working directory (a server compiled elsewhere and started from the checkout).
 */
function addonPath(): string {
  if (process.env.WHIPSFU_NATIVE_ADDON) return process.env.WHIPSFU_NATIVE_ADDON;
  const own = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", BUILT);
  const cwd = path.resolve(BUILT);
  return !existsSync(own) && existsSync(cwd) ? cwd : own;
}

/** The state symbol Node keeps a dgram socket's handle under (lib/internal/dgram.js kStateSymbol). */
function stateOf(socket: dgram.Socket): { handle?: { fd?: unknown } } | undefined {
  const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === "state symbol");
  return symbol ? (socket as unknown as Record<symbol, { handle?: { fd?: unknown } }>)[symbol] : undefined;
}

/** A bound dgram socket's descriptor, or undefined when this Node does not show it (or it is closed). */
export function socketFd(socket: dgram.Socket): number | undefined {
  const fd = stateOf(socket)?.handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

function load(): { addon: NativeAddon | undefined; reason: string } {
  // For a run of everything on the JavaScript path with the addon built (CI does one).
  if (process.env.WHIPSFU_NATIVE === "off") return { addon: undefined, reason: "WHIPSFU_NATIVE=off" };
  if (process.platform !== "linux") return { addon: undefined, reason: `the native forwarding addon is built for Linux only (this is ${process.platform})` };
  const file = addonPath();
  if (!existsSync(file))
    return {
      addon: undefined,
      reason: `the native forwarding addon was not built (${file} is missing; npm install builds it where a C++ compiler is installed)`,
    };
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (err) {
    return { addon: undefined, reason: `the native forwarding addon does not load: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (addon.version !== 1 || typeof addon.Group !== "function")
    return { addon: undefined, reason: "the native forwarding addon is of another version: run npm install again" };
  // The descriptor is read from a Node internal: a socket made now must show it (-1 until bound).
  const probe = dgram.createSocket("udp4");
  const fd = stateOf(probe)?.handle?.fd;
  probe.close();
  if (typeof fd !== "number")
    return { addon: undefined, reason: `this Node (${process.version}) does not show a UDP socket's descriptor, which the native path needs` };
  return { addon, reason: "" };
}

/** The addon, or why not (an empty reason when it loaded). */
export const nativeForwarding: { readonly addon: NativeAddon | undefined; readonly reason: string } = load();

export type ForwardPath = "native" | "fast" | "werift";

/**
 * The forwarding path that runs for the one asked for: native falls back to fast where the addon
 * is unavailable, with the reason to log once at start.
 */
export function effectiveForwardPath(requested: ForwardPath): { path: ForwardPath; fallbackReason?: string } {
  if (requested === "native" && !nativeForwarding.addon) return { path: "fast", fallbackReason: nativeForwarding.reason };
  return { path: requested };
}
