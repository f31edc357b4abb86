// The one door to werift's internals. The rest of src/ uses werift's public API only (the peer
// connection, transceivers, RtpPacket, RtpHeader, the RTCP classes); what the SFU needs beyond it
// is reached for here, behind small typed functions, so a werift upgrade is checked in one file.
//
// werift internals touched (as of werift 0.25):
// - RTCPeerConnection's private `router`: `routeRtp` is wrapped to see every incoming RTP packet
//   first, `extIdUriMap` gives the negotiated extension ids, `ssrcTable` routes an SSRC the offer
//   did not declare (with the receiver's `trackBySSRC` and its track's `ssrc`).
// - RTCRtpReceiver `receiverTWCC` and `setupTWCC`: werift's own transport-wide feedback, switched
//   off (twcc.ts says why); `dtlsTransport.sendRtcp` given ready bytes carries ours instead.
// - RTCRtpSender's private `rtxPayloadType`, and its private sender-report fields `ntpTimestamp`,
//   `rtpTimestamp`, `packetCount`, `octetCount` that `runRtcp()` sends.
// - RTCDtlsTransport `srtp.localContext` (the SRTP profile and session keys of what we send) and
//   `srtp.encrypt`.
// - RTCIceTransport `connection`: `nominated` (the pair's `remoteAddr`, `protocol.type` and the UDP
//   socket at `protocol.transport.socket`), `send`, `onData`, `stunServer`.
// - RTCDtlsTransport `dtls` (its DtlsSocket: `onHandleHandshakes`, `connect`, and the flight
//   number of its context `dtls.flight`): two handshake gaps closed (below, "DTLS handshake").
//
// After a werift upgrade, rerun test/sfu/werift-adapter.test.ts (each internal above, on two
// loopback peers) and test/sfu/srtp.test.ts; then, one at a time, test/e2e/forwarding.test.ts,
// rtcp.test.ts, simulcast.test.ts, offers.test.ts (SSRCs the offer left out), workers.test.ts
// (the nominated socket in a worker), dtls-handshake.test.ts (the DTLS guards) and
// test/fuzz/regressions.test.ts (the STUN server).
import type dgram from "node:dgram";
import { RtpHeader, type RTCDtlsTransport, type RTCPeerConnection, type RTCRtpReceiver, type RTCRtpSender, type RtpPacket, type SrtpSession } from "werift";
import type { Protect } from "./outbound.js";
import type { PlainHeader, SrtpSessionKeys } from "./srtp.js";

// ---------------------------------------------------------------------------------------------
// Incoming RTP of a publisher, before werift routes it

/** The part of werift's private RTP router used here. */
interface Router {
  ssrcTable: Record<number, unknown>;
  extIdUriMap: Record<number, string>;
  routeRtp: (packet: RtpPacket) => void;
}

/** A peer's incoming RTP as werift's router sees it. */
export interface IncomingRtp {
  /** The id the remote negotiated for an extension URI, read as werift holds it now. */
  extensionId(uri: string): number | undefined;
  /** Whether werift already routes packets of this SSRC to a receiver. */
  isRouted(ssrc: number): boolean;
  /** Routes an SSRC the offer did not declare to the receiver's track, as if it had declared it. */
  routeTo(ssrc: number, receiver: RTCRtpReceiver): void;
  /**
   * Has `tap` see every RTP packet, synchronously, just before werift routes it; a tap added
   * later sees the packet before the earlier ones.
   */
  tap(tap: (packet: RtpPacket) => void): void;
}

/** The peer's incoming RTP, or undefined when this werift has no router of the expected shape. */
export function incomingRtp(pc: RTCPeerConnection): IncomingRtp | undefined {
  const router = (pc as unknown as { router?: Router }).router;
  if (!router || typeof router.routeRtp !== "function") return undefined;
  return {
    extensionId(uri) {
      const entry = Object.entries(router.extIdUriMap).find(([, u]) => u === uri);
      return entry ? Number(entry[0]) : undefined;
    },
    isRouted(ssrc) {
      return router.ssrcTable[ssrc] !== undefined;
    },
    routeTo(ssrc, receiver) {
      const track = receiver.track;
      track.ssrc = ssrc;
      receiver.trackBySSRC[ssrc] = track;
      router.ssrcTable[ssrc] = receiver;
    },
    tap(tap) {
      const route = router.routeRtp;
      router.routeRtp = (packet: RtpPacket) => {
        tap(packet);
        route(packet);
      };
    },
  };
}

/** The receiver fields werift's transport-wide feedback lives in. */
interface TwccReceiverView {
  receiverTWCC?: unknown;
  setupTWCC: (ssrc: number) => void;
  dtlsTransport?: { sendRtcp(packets: { serialize(): Buffer }[]): Promise<unknown> };
}

/** Sends one ready RTCP packet (its bytes) to the remote. */
export type RtcpSend = (rtcp: Buffer) => void;

/**
 * Switches werift's own transport-wide feedback off on every receiver of the peer, for feedback
 * built elsewhere. Returns what sends that feedback, asked each time: undefined while no receiver
 * has a DTLS transport yet. Undefined when the peer has no receivers.
 */
export function takeOverTransportFeedback(pc: RTCPeerConnection): (() => RtcpSend | undefined) | undefined {
  const receivers = pc.getTransceivers().map((t) => t.receiver as unknown as TwccReceiverView);
  if (receivers.length === 0) return undefined;
  for (const r of receivers) {
    r.receiverTWCC = undefined;
    r.setupTWCC = () => undefined;
  }
  return () => {
    const transport = receivers.find((r) => r.dtlsTransport)?.dtlsTransport;
    if (!transport) return undefined;
    return (rtcp) => {
      transport.sendRtcp([{ serialize: () => rtcp }]).catch(() => undefined);
    };
  };
}

// ---------------------------------------------------------------------------------------------
// A viewer's sender whose packets werift does not send itself (FastSender)

/** The RTX stream (RFC 4588) werift negotiated for a sender, if any; its payload type is private. */
export function rtxOf(sender: RTCRtpSender): { payloadType: number; ssrc: number } | undefined {
  const payloadType = (sender as unknown as { rtxPayloadType?: number }).rtxPayloadType;
  return payloadType === undefined ? undefined : { payloadType, ssrc: sender.rtxSsrc };
}

/** werift sender fields its RTCP loop reads for sender reports. */
interface SenderReportState {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** Starts werift's RTCP loop of a sender (sender reports), which its own send would have started. */
export function startSenderReports(sender: RTCRtpSender): void {
  void sender.runRtcp();
}

/** What the sender's next report says: the newest packet's (NTP, RTP) time and the counts so far. */
export function setSenderReport(sender: RTCRtpSender, ntpTimestamp: bigint, rtpTimestamp: number, packetCount: number, octetCount: number): void {
  const r = sender as unknown as SenderReportState;
  r.ntpTimestamp = ntpTimestamp;
  r.rtpTimestamp = rtpTimestamp;
  r.packetCount = packetCount;
  r.octetCount = octetCount;
}

/** The fields of a werift SRTP session's context read here. */
interface SrtpContextView {
  localContext: SrtpSessionKeys;
}

/** The SRTP profile and session keys of what this side sends, from a werift SRTP session. */
export function srtpSessionKeys(session: SrtpSession): SrtpSessionKeys {
  return (session as unknown as SrtpContextView).localContext;
}

/** The SRTP keys werift derived from DTLS for what the transport sends; they exist once DTLS is done. */
export function localSrtpKeys(dtls: RTCDtlsTransport): SrtpSessionKeys {
  return srtpSessionKeys(dtls.srtp);
}

/** werift's own SRTP encrypt as a Protect, for a profile SrtpProtector lacks; slower, per packet objects. */
export function weriftProtect(dtls: RTCDtlsTransport): Protect {
  return (h: PlainHeader, payload, extension, extensionLength) => {
    const header = new RtpHeader({ ...h, extensions: extensionLength === 0 ? [] : elementsOf(extension, extensionLength) });
    header.extension = header.extensions.length > 0;
    return dtls.srtp.encrypt(Buffer.from(payload.buffer, payload.byteOffset, payload.length), header);
  };
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

// ---------------------------------------------------------------------------------------------
// ICE: where packets go, and what arrives

/** The parts of werift's nominated candidate pair read here. */
interface NominatedPair {
  remoteAddr: readonly [string, number];
  protocol: { type: string; transport?: { socket?: dgram.Socket } };
}

/** Where a viewer's packets go: the nominated pair's remote address, and its UDP socket. */
export interface SendPath {
  readonly address: string;
  readonly port: number;
  /** Undefined for TCP and TURN pairs: werift frames or wraps what goes over those (sendOverIce). */
  readonly socket: dgram.Socket | undefined;
}

/**
 * The transport's nominated path, asked each time (undefined before ICE has one). It is the same
 * object until ICE nominates another pair, so callers tell a new path by identity.
 */
export function nominatedPath(dtls: RTCDtlsTransport): () => SendPath | undefined {
  let pair: NominatedPair | undefined;
  let path: SendPath | undefined;
  return () => {
    const now = dtls.iceTransport.connection.nominated as unknown as NominatedPair | undefined;
    if (now === undefined) return undefined;
    if (now !== pair) {
      pair = now;
      path = {
        address: now.remoteAddr[0],
        port: now.remoteAddr[1],
        socket: now.protocol.type === "stun" ? now.protocol.transport?.socket : undefined,
      };
    }
    return path;
  };
}

/** Sends over the nominated pair as werift does, framing for TCP and wrapping for TURN. */
export function sendOverIce(dtls: RTCDtlsTransport, data: Buffer): void {
  dtls.iceTransport.connection.send(data).catch(() => undefined);
}

/**
 * Calls `touch` for every datagram the peer's ICE transports receive (STUN, DTLS, SRTP, SRTCP),
 * from when they exist: they do once the answer is set, and certainly by the time ICE connects.
 */
export function onIncomingData(pc: RTCPeerConnection, touch: () => void): void {
  const watched = new Set<unknown>();
  const watch = (): void => {
    for (const t of pc.iceTransports) {
      if (watched.has(t)) continue;
      watched.add(t);
      t.connection.onData.subscribe(touch);
    }
  };
  pc.iceConnectionStateChange.subscribe(watch);
  pc.connectionStateChange.subscribe(watch);
}

/**
 * Drops the STUN server werift gives every ICE agent without one (stun.l.google.com:19302), even
 * with iceServers []: set before gathering, no query goes out.
 */
export function dropDefaultStunServer(pc: RTCPeerConnection): void {
  for (const t of pc.iceTransports) t.connection.stunServer = undefined;
}

// ---------------------------------------------------------------------------------------------
// DTLS handshake
//
// Two gaps in werift's DTLS handshake (its DtlsClient and Flight classes), closed per peer from
// outside through the fields werift's types expose:
//
// - A duplicate HelloVerifyRequest. The server answers as DTLS client (a=setup:active); when its
//   ClientHello is retransmitted (first after 500 ms) while the viewer's answer to the first one
//   is still on its way — a busy event loop on either side is enough — the viewer answers both.
//   werift's Flight3 throws on the second one (or, past flight 3, starts the handshake over with
//   an empty transcript): the server's DTLS transport fails and the viewer sits with ICE connected
//   and DTLS "connecting". RFC 6347 §4.2.1: the ClientHello with the cookie is already sent and is
//   retransmitted on its own timer, so the duplicate is dropped.
// - A flight's retransmission loop (up to 11 sends over ~33 s) ends only when the handshake moves
//   on, not when the peer is closed: a session closed mid-handshake kept its whole werift peer
//   alive, and sent to the gone client, for that long. Closing moves the handshake past its last
//   flight, so every loop ends at its next timer; a peer closed in the 100 ms between werift
//   making its DTLS client and starting it does not start it at all (starting sets the flight
//   back to 1).

const HELLO_VERIFY_REQUEST = 3;
/** werift's flight number once the client has sent its ClientHello with the cookie. */
const COOKIE_SENT = 3;
/** Past werift's last flight (6, and 7 for a finished client): every retransmission loop stops. */
const PAST_LAST_FLIGHT = 8;

/** DTLS transports of closed peers. */
const ended = new WeakSet<RTCDtlsTransport>();

/**
 * For a transport where this side is the DTLS client (call before it starts): drops duplicate
 * HelloVerifyRequests, and does not start the handshake once endDtlsFlights() ended the peer.
 */
function guardDtlsHandshake(transport: RTCDtlsTransport): void {
  transport.onStateChange.subscribe((state) => {
    if (state !== "connecting") return;
    // werift makes the DTLS socket right after announcing "connecting" and starts the handshake
    // 100 ms later: a microtask is in between.
    queueMicrotask(() => {
      const socket = transport.dtls;
      if (!socket || transport.role !== "client") return;
      const handle = socket.onHandleHandshakes;
      socket.onHandleHandshakes = (assembled) => {
        if (socket.dtls.flight < COOKIE_SENT || !assembled.some((h) => h.msg_type === HELLO_VERIFY_REQUEST)) return handle(assembled);
        const rest = assembled.filter((h) => h.msg_type !== HELLO_VERIFY_REQUEST);
        return rest.length > 0 ? handle(rest) : Promise.resolve();
      };
      if ("connect" in socket && typeof socket.connect === "function") {
        const connect = socket.connect.bind(socket) as () => Promise<void>;
        socket.connect = () => (ended.has(transport) ? Promise.resolve() : connect());
      }
    });
  });
}

/** Ends the DTLS flights a closing peer may still be retransmitting. */
export function endDtlsFlights(pc: RTCPeerConnection): void {
  for (const t of pc.dtlsTransports) {
    ended.add(t);
    const context = t.dtls?.dtls;
    if (context) context.flight = PAST_LAST_FLIGHT;
  }
}

/** Guards every DTLS transport of a peer once ICE is checking (they exist, and have not started). */
export function guardDtlsHandshakes(pc: RTCPeerConnection): void {
  const watched = new Set<unknown>();
  const watch = (): void => {
    for (const t of pc.dtlsTransports) {
      if (watched.has(t)) continue;
      watched.add(t);
      guardDtlsHandshake(t);
    }
  };
  pc.iceConnectionStateChange.subscribe(watch);
  pc.connectionStateChange.subscribe(watch);
}
