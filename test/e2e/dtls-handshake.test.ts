// The DTLS handshake when the network or a busy event loop duplicates a flight: the server is the
// DTLS client (a=setup:active), so a viewer or publisher that answers one ClientHello twice sends
// two HelloVerifyRequests. The session must still connect (src/sfu/dtls-guard.ts).
import type { RTCPeerConnection } from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";
import { WhipClient } from "../helpers/whip-client.js";

const CLIENT_HELLO = 1;

/** Makes the peer's DTLS server handle its first ClientHello twice: two HelloVerifyRequests go out. */
function answerFirstHelloTwice(pc: RTCPeerConnection): { duplicated: () => boolean } {
  let duplicated = false;
  for (const t of pc.dtlsTransports) {
    t.onStateChange.subscribe((state) => {
      if (state !== "connecting") return;
      queueMicrotask(() => {
        const socket = t.dtls;
        if (!socket) return;
        const handle = socket.onHandleHandshakes;
        socket.onHandleHandshakes = async (assembled) => {
          if (!duplicated && assembled.some((h) => h.msg_type === CLIENT_HELLO)) {
            duplicated = true;
            await handle(assembled);
          }
          return handle(assembled);
        };
      });
    });
  }
  return { duplicated: () => duplicated };
}

describe("DTLS handshake", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it("connects when the client answers the server's ClientHello twice", async () => {
    const client = await WhipClient.create({ video: { codec: "VP8" }, audio: false, connectTimeoutMs: 8000 });
    try {
      await client.createOffer();
      const probe = answerFirstHelloTwice(client.pc);
      await client.publish(server.whipUrl("dup-hello"));
      expect(probe.duplicated()).toBe(true);
      expect(server.core.rooms.get("dup-hello")?.publisher?.closed).toBe(false);
    } finally {
      await client.close();
    }
  }, 30_000);
});
