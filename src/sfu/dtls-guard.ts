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
import type { RTCDtlsTransport, RTCPeerConnection } from "werift";

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
export function guardDtlsHandshake(transport: RTCDtlsTransport): void {
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
