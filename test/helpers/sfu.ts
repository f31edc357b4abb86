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
  return { rooms, log, ended };
}

/** A werift publisher (no media source) connected to `room` through rooms.publish. */
export async function publishTo(rooms: Rooms, room: string, opts: WhipClientOptions = { video: { codec: "VP8" }, audio: false }) {
  const client = await WhipClient.create(opts);
  try {
    const { session, answer } = await rooms.publish(room, await client.createOffer());
    await client.pc.setRemoteDescription({ type: "answer", sdp: answer });
    await waitConnected(client.pc);
    return { client, session };
  } catch (err) {
    await client.close({ vanish: true });
    throw err;
  }
}

/** A werift viewer connected to `room` through rooms.subscribe. */
export async function subscribeTo(rooms: Rooms, room: string, opts: WhepClientOptions = { audio: false }) {
  const client = new WhepClient(opts);
  try {
    const { session, answer } = await rooms.subscribe(room, await client.createOffer());
    client.negotiated = sdpCodecs(answer);
    await client.pc.setRemoteDescription({ type: "answer", sdp: answer });
    await waitConnected(client.pc);
    return { client, session };
  } catch (err) {
    await client.close({ vanish: true });
    throw err;
  }
}
