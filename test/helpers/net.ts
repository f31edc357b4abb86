// Loopback networking for tests: free ports, bound sockets, and the werift ICE settings that keep
// every test peer on 127.0.0.1.
import dgram from "node:dgram";
import net from "node:net";
import type { CandidatePair, PeerConfig } from "werift";

export const LOOPBACK = "127.0.0.1";

/** A UDP socket bound on 127.0.0.1 (port 0 = ephemeral). Close it with closeUdp(). */
export function bindUdp(port = 0, host = LOOPBACK): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    const onError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once("error", onError);
    socket.bind(port, host, () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

/** Closes a UDP socket; safe to call twice or on a socket that failed to bind. */
export function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // ERR_SOCKET_DGRAM_NOT_RUNNING: already closed
    }
  });
}

export function udpPort(socket: dgram.Socket): number {
  return socket.address().port;
}

/**
 * A UDP port on 127.0.0.1 that was free a moment ago. Another process can take it before you
 * bind it: when you can, bind a socket yourself (bindUdp(0)) and hand its port over instead.
 */
export async function freeUdpPort(): Promise<number> {
  const s = await bindUdp(0);
  const port = udpPort(s);
  await closeUdp(s);
  return port;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (same caveat as freeUdpPort). */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("no TCP port assigned"))));
    });
  });
}

/** `count` distinct free ports of one protocol. */
export async function freePorts(count: number, proto: "udp" | "tcp" = "udp"): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < count) out.add(proto === "udp" ? await freeUdpPort() : await freeTcpPort());
  return [...out];
}

/** True when both ends of an ICE candidate pair are 127.0.0.1. */
export function isLoopbackPair(pair: CandidatePair): boolean {
  return pair.localCandidate.host === LOOPBACK && pair.remoteCandidate.host === LOOPBACK;
}

/**
 * werift settings for a test peer: gather 127.0.0.1 (loopback is excluded otherwise), no STUN
 * server, no IPv6, and only loopback↔loopback pairs, so no test packet leaves the machine.
 */
export function loopbackPeerConfig(): Partial<PeerConfig> {
  return {
    iceServers: [],
    iceAdditionalHostAddresses: [LOOPBACK],
    iceUseIpv6: false,
    iceFilterCandidatePair: isLoopbackPair,
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` every `stepMs` until it returns true; rejects after `timeoutMs` with `what` and the
 * last value of `describe()` in the message, so a failing wait says what it was waiting for.
 */
export async function waitFor(check: () => boolean, opts: { timeoutMs?: number; stepMs?: number; what?: string; describe?: () => string } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() >= end) {
      const detail = opts.describe ? ` (${opts.describe()})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? "a condition"}${detail}`);
    }
    await sleep(opts.stepMs ?? 50);
  }
}
