// A gap in werift's DTLS handshake (its DtlsClient and Flight classes), closed per peer from
// outside through the fields werift's types expose:
//
// - A duplicate HelloVerifyRequest. The server answers as DTLS client (a=setup:active); when its
//   ClientHello is retransmitted (first after 500 ms) while the viewer's answer to the first one
//   is still on its way — a busy event loop on either side is enough — the viewer answers both.
//   werift's Flight3 throws on the second one (or, past flight 3, starts the handshake over with
//   an empty transcript): the server's DTLS transport fails and the viewer sits with ICE connected
//   and DTLS "connecting". RFC 6347 §4.2.1: the ClientHello with the cookie is already sent and is
//   retransmitted on its own timer, so the duplicate is dropped.
import type { RTCDtlsTransport } from "werift";

const HELLO_VERIFY_REQUEST = 3;
/** werift's flight number once the client has sent its ClientHello with the cookie. */
const COOKIE_SENT = 3;

/** Drops duplicate HelloVerifyRequests for a transport where this side is the DTLS client; call before it starts. */
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
    });
  });
}
