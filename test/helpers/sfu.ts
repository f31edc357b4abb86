// The SFU's room registry with no HTTP in front: a Rooms on loopback ICE, and werift test peers
// (the e2e clients) whose offers and answers go to it directly instead of through WHIP/WHEP.
import { loadConfig } from "../../src/config.js";
import { Rooms, type RoomEvents, type RoomsOptions, type SessionKind } from "../../src/sfu/rooms.js";
import type { IceSettings } from "../../src/sfu/peer.js";
import type { EndReason } from "../../src/sfu/session.js";
import { memoryLog } from "./log.js";
import { waitConnected, WhipClient, type WhipClientOptions } from "./whip-client.js";
import { sdpCodecs, WhepClient, type WhepClientOptions } from "./whep-client.js";

/** The server's ICE as the test server has it: host candidates on 127.0.0.1 only. */
export const LOOPBACK_ICE: IceSettings = loadConfig({ ICE_HOSTS: "127.0.0.1", ICE_ADDITIONAL_HOSTS: "127.0.0.1" });

export interface EndedSession {
  kind: SessionKind;
  room: string;
  id: string;
  reason: EndReason;
}

export interface TestRooms {
  rooms: Rooms;
  log: ReturnType<typeof memoryLog>;
  /** Every sessionEnded event, in order. */
  ended: EndedSession[];
  /** Why the session with this id ended, as its sessionEnded event said; undefined while it lives. */
  reasonOf(id: string): EndReason | undefined;
}

/** A Rooms on loopback ICE with a memory log; liveness is generous unless given. */
export function testRooms(opts: Partial<RoomsOptions> = {}): TestRooms {
  const log = memoryLog();
  const ended: EndedSession[] = [];
  const events: RoomEvents = { sessionEnded: (kind, room, id, reason) => ended.push({ kind, room, id, reason }) };
  const rooms = new Rooms({
    ice: LOOPBACK_ICE,
    liveness: { connectTimeoutMs: 30_000, silenceTimeoutMs: 30_000 },
    maxSubsPerRoom: 0,
    consumers: [],
    log,
    events,
    ...opts,
  });
  return { rooms, log, ended, reasonOf: (id) => ended.find((e) => e.id === id)?.reason };
}

/**
 * Gives the client's offer to `negotiate` (the registry), applies the answer and waits until the
 * client is connected; closes the client again if any of that fails.
 */
async function connect<C extends { pc: WhipClient["pc"]; createOffer(): Promise<string>; close(o?: { vanish?: boolean }): Promise<void> }, S>(
  client: C,
  negotiate: (offer: string) => Promise<{ session: S; answer: string }>,
  onAnswer: (answer: string) => void = () => undefined,
): Promise<{ client: C; session: S }> {
  try {
    const { session, answer } = await negotiate(await client.createOffer());
    onAnswer(answer);
    await client.pc.setRemoteDescription({ type: "answer", sdp: answer });
    await waitConnected(client.pc);
    return { client, session };
  } catch (err) {
    await client.close({ vanish: true });
    throw err;
  }
}

/** A werift publisher (no media source) connected to `room` through rooms.publish. */
export async function publishTo(rooms: Rooms, room: string, opts: WhipClientOptions = { video: { codec: "VP8" }, audio: false }) {
  return connect(await WhipClient.create(opts), (offer) => rooms.publish(room, offer));
}

/** A werift viewer connected to `room` through rooms.subscribe. */
export function subscribeTo(rooms: Rooms, room: string, opts: WhepClientOptions = { audio: false }) {
  const client = new WhepClient(opts);
  return connect(
    client,
    (offer) => rooms.subscribe(room, offer),
    (answer) => (client.negotiated = sdpCodecs(answer)),
  );
}
