// The DTLS handshake when the network or a busy event loop duplicates a flight, and when a session
// ends before its handshake does (src/sfu/werift-adapter.ts, "DTLS handshake"). The server is the DTLS client
// (a=setup:active): a viewer or publisher that answers one ClientHello twice sends two
// HelloVerifyRequests, and one that never answers leaves the server retransmitting.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { RTCPeerConnection } from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";
import { WhipClient } from "../helpers/whip-client.js";

const CLIENT_HELLO = 1;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Runs `f` on each DTLS socket of the peer as werift makes it (right after "connecting"). */
function onDtlsSocket(pc: RTCPeerConnection, f: (socket: NonNullable<RTCPeerConnection["dtlsTransports"][number]["dtls"]>) => void): void {
  for (const t of pc.dtlsTransports) {
    t.onStateChange.subscribe((state) => {
      if (state === "connecting") queueMicrotask(() => t.dtls && f(t.dtls));
    });
  }
}

/** Makes the peer's DTLS server handle its first ClientHello twice: two HelloVerifyRequests go out. */
function answerFirstHelloTwice(pc: RTCPeerConnection): { duplicated: () => boolean } {
  let duplicated = false;
  onDtlsSocket(pc, (socket) => {
    const handle = socket.onHandleHandshakes;
    socket.onHandleHandshakes = async (assembled) => {
      if (!duplicated && assembled.some((h) => h.msg_type === CLIENT_HELLO)) {
        duplicated = true;
        await handle(assembled);
      }
      return handle(assembled);
    };
  });
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

  it("a session ended mid-handshake lets its peer go: the server's DTLS retransmissions stop", async () => {
    const client = await WhipClient.create({ video: { codec: "VP8" }, audio: false, connectTimeoutMs: 8000 });
    let peer: WeakRef<object> | undefined;
    try {
      await client.createOffer();
      // ICE connects, DTLS never answers: the server retransmits its ClientHello (werift: for ~33 s).
      let helloes = 0;
      onDtlsSocket(client.pc, (socket) => {
        socket.onHandleHandshakes = async (assembled) => {
          if (assembled.some((h) => h.msg_type === CLIENT_HELLO)) helloes++;
        };
      });
      await client.publish(server.whipUrl("mute-dtls"), { waitConnected: false });
      const id = client.location!.split("/").pop()!;
      peer = new WeakRef(server.core.rooms.session("whip", id)!.session.peer.pc);
      const t0 = Date.now();
      while (helloes < 2 && Date.now() - t0 < 8000) await new Promise((r) => setTimeout(r, 100));
      expect(helloes).toBeGreaterThanOrEqual(2);
    } finally {
      await client.close();
    }
    // The longest pause between two retransmissions is 5.5 s.
    await new Promise((r) => setTimeout(r, 6500));
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    expect(peer.deref(), "the closed session's werift peer is still reachable").toBeUndefined();
  }, 40_000);

  /**
   * Publishes, and closes the server's session in the 100 ms werift waits between making its
   * DTLS client and starting it. Returns a weak reference to the session's werift peer; the
   * test's own frames hold nothing of it once this returns.
   */
  async function closeAsDtlsStarts(client: WhipClient, room: string): Promise<WeakRef<object>> {
    await client.publish(server.whipUrl(room), { waitConnected: false });
    const session = server.core.rooms.session("whip", client.location!.split("/").pop()!)!.session;
    const flag = { started: false };
    for (const t of session.peer.pc.dtlsTransports) {
      t.onStateChange.subscribe((state) => {
        if (state !== "connecting") return;
        flag.started = true;
        void session.close("delete");
      });
    }
    for (let i = 0; i < 80 && !flag.started; i++) await new Promise((r) => setTimeout(r, 100));
    expect(flag.started, "the server's DTLS started").toBe(true);
    return new WeakRef(session.peer.pc);
  }

  it("a session closed as its DTLS starts never starts the handshake, and lets its peer go", async () => {
    const client = await WhipClient.create({ video: { codec: "VP8" }, audio: false, connectTimeoutMs: 8000 });
    let peer: WeakRef<object>;
    try {
      peer = await closeAsDtlsStarts(client, "closed-at-start");
    } finally {
      await client.close({ vanish: true });
    }
    await new Promise((r) => setTimeout(r, 6500));
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    expect(peer.deref(), "the closed session's werift peer is still reachable").toBeUndefined();
  }, 40_000);
});
