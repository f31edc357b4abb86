// Session liveness without HTTP: the watchdog that ends a WHIP or WHEP session whose peer went
// away without DELETE (silence), or that never finished connecting (connect timeout), driven by
// werift peers on loopback UDP against a Rooms.
import { afterEach, describe, expect, it } from "vitest";
import { fixtureSdp } from "../helpers/fixtures.js";
import { bindUdp, closeUdp, LOOPBACK, sleep, waitFor } from "../helpers/net.js";
import { publishTo, subscribeTo, testRooms, type TestRooms } from "../helpers/sfu.js";
import { WhipClient } from "../helpers/whip-client.js";

const open: TestRooms[] = [];
const clients: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];
function make(connectTimeoutMs: number, silenceTimeoutMs: number): TestRooms {
  const t = testRooms({ liveness: { connectTimeoutMs, silenceTimeoutMs } });
  open.push(t);
  return t;
}
/** Stopped before the clients: a client closing while RTP still arrives writes to a closed peer. */
const pumps: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(pumps.splice(0).map((p) => p.close()));
  await Promise.all(clients.splice(0).map((c) => c.close({ vanish: true })));
  await Promise.all(open.splice(0).map((t) => t.rooms.close()));
});

/**
 * Minimal VP8 RTP to a WhipClient's video socket every 50 ms, which the client sends on to the
 * server: a publisher with media flowing, without an encoder.
 */
async function pumpVp8(client: WhipClient): Promise<{ close(): Promise<void> }> {
  const socket = await bindUdp(0);
  let seq = 0;
  const timer = setInterval(() => {
    const packet = Buffer.alloc(12 + 4);
    packet[0] = 0x80;
    packet[1] = 0x80 | 96; // marker, payload type 96
    packet.writeUInt16BE(seq++ & 0xffff, 2);
    packet.writeUInt32BE((seq * 3000) >>> 0, 4);
    packet.writeUInt32BE(0x1234, 8);
    packet[12] = 0x10; // VP8 payload descriptor: start of partition
    socket.send(packet, client.port("video"), LOOPBACK);
  }, 50);
  return {
    close: async () => {
      clearInterval(timer);
      await closeUdp(socket);
    },
  };
}

/** ms from now until `session` is closed. */
async function closedAfter(session: { closed: boolean }, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await waitFor(() => session.closed, { timeoutMs, stepMs: 20, what: "the session to end" });
  return performance.now() - t0;
}

describe("session liveness", () => {
  it("an answered offer whose peer never shows up ends as timeout once silent for silenceTimeoutMs", async () => {
    const { rooms, ended, reasonOf } = make(30_000, 1000);
    // Silence counts from the peer's creation, inside publish().
    const t0 = performance.now();
    const { session } = await rooms.publish("ghost", fixtureSdp("chrome-publish.sdp"));
    await closedAfter(session, 5000);
    const ms = performance.now() - t0;
    expect(reasonOf(session.id)).toBe("timeout");
    // The watchdog looks every 500 ms.
    expect(ms).toBeGreaterThanOrEqual(1000);
    expect(ms).toBeLessThan(3000);
    expect(rooms.get("ghost")).toBeUndefined();
    expect(ended[0]).toMatchObject({ kind: "whip", room: "ghost", reason: "timeout" });
  });

  it("a connected publisher stays while its media flows, and ends its room as timeout once the peer vanishes", async () => {
    const { rooms, reasonOf } = make(30_000, 1500);
    const pub = await publishTo(rooms, "vanish");
    clients.push(pub.client);
    const pump = await pumpVp8(pub.client);
    pumps.push(pump);
    await waitFor(() => pub.session.connected, { timeoutMs: 5000, what: "the server to see the publisher connected" });
    await sleep(3000);
    expect(pub.session.closed).toBe(false);
    await pump.close();
    await pub.client.close({ vanish: true });
    const ms = await closedAfter(pub.session, 5000);
    expect(reasonOf(pub.session.id)).toBe("timeout");
    expect(ms).toBeGreaterThanOrEqual(1000);
    expect(rooms.get("vanish")).toBeUndefined();
  });

  it("a viewer that vanishes ends alone as timeout; the room and its publisher stay", async () => {
    const { rooms, ended, reasonOf } = make(30_000, 1500);
    const pub = await publishTo(rooms, "stays");
    const sub = await subscribeTo(rooms, "stays");
    clients.push(pub.client, sub.client);
    pumps.push(await pumpVp8(pub.client));
    await waitFor(() => sub.session.connected, { timeoutMs: 5000, what: "the server to see the viewer connected" });
    await sub.client.close({ vanish: true });
    await closedAfter(sub.session, 5000);
    expect(reasonOf(sub.session.id)).toBe("timeout");
    expect(ended).toEqual([{ kind: "whep", room: "stays", id: sub.session.id, reason: "timeout" }]);
    expect(rooms.get("stays")?.subscribers.size).toBe(0);
    expect(pub.session.closed).toBe(false);
  });

  it("a peer whose ICE checks go on but whose DTLS never completes ends as ice-failed after connectTimeoutMs", async () => {
    // Silence alone would never end it: its consent checks keep arriving.
    const { rooms, reasonOf } = make(2000, 1500);
    const client = await WhipClient.create({ video: { codec: "VP8" }, audio: false });
    clients.push(client);
    const { session, answer } = await rooms.publish("stuck", await client.createOffer());
    // Told the server is the passive side, the client starts DTLS as the active side too: both
    // send ClientHellos, no handshake ever completes, while ICE connects and keeps checking.
    expect(answer).toMatch(/a=setup:active/);
    await client.pc.setRemoteDescription({ type: "answer", sdp: answer.replace(/a=setup:active/g, "a=setup:passive") });
    const ms = await closedAfter(session, 6000);
    expect(session.connected).toBe(false);
    expect(reasonOf(session.id)).toBe("ice-failed");
    expect(ms).toBeGreaterThanOrEqual(1500);
    expect(rooms.get("stuck")).toBeUndefined();
  });
});
