// The room registry without HTTP: one publisher per room, subscriber caps, the server's capacity
// limits, session lookup, and how rooms end (with their publisher, on admin close, on shutdown).
// Offers that never connect are enough to hold a room; where a peer must really be there, a
// werift client connects over loopback UDP. Failures are asserted by kind (docs/api.md, "Errors").
import { afterEach, describe, expect, it } from "vitest";
import { isDomainError, type ErrorKind } from "../../src/errors.js";
import { Room, type TrackConsumer } from "../../src/sfu/room.js";
import type { RoomSource } from "../../src/sfu/types.js";
import type { PublishedTrack } from "../../src/sfu/publisher.js";
import type { EndReason } from "../../src/sfu/session.js";
import type { Subscriber } from "../../src/sfu/subscriber.js";
import { fixtureSdp } from "../helpers/fixtures.js";
import { LOOPBACK_ICE, publishTo, subscribeTo, testRooms, type TestRooms } from "../helpers/sfu.js";

const publishOffer = fixtureSdp("chrome-publish.sdp");
const playOffer = fixtureSdp("chrome-offer.sdp");
const pcmuOnly = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n";

/** The kind of the DomainError `p` rejects with (fails the test if it resolves or rejects otherwise). */
async function kindOf(p: Promise<unknown>): Promise<ErrorKind> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isDomainError(err)) throw new Error(`expected a DomainError, got ${err === undefined ? "success" : String(err)}`);
  return err.kind;
}

const open: TestRooms[] = [];
const closers: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];
function make(opts: Parameters<typeof testRooms>[0] = {}): TestRooms {
  const t = testRooms(opts);
  open.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c.close({ vanish: true })));
  await Promise.all(open.splice(0).map((t) => t.rooms.close()));
});

describe("Rooms: who may join", () => {
  it("one publisher per room: a second publish, even while the first is being set up, is a conflict", async () => {
    const { rooms } = make();
    const [first, second] = await Promise.allSettled([rooms.publish("one", publishOffer), rooms.publish("one", publishOffer)]);
    expect(first.status).toBe("fulfilled");
    expect(second.status === "rejected" && isDomainError(second.reason, "conflict")).toBe(true);
    expect(await kindOf(rooms.publish("one", publishOffer))).toBe("conflict");
    // Another room is free.
    await rooms.publish("two", publishOffer);
    expect(rooms.all().length).toBe(2);
  });

  it("a bad offer is invalid_input, one with nothing to forward unsupported_codec, and neither takes the room", async () => {
    const { rooms } = make();
    expect(await kindOf(rooms.publish("r", "hello"))).toBe("invalid_input");
    expect(await kindOf(rooms.publish("r", pcmuOnly))).toBe("unsupported_codec");
    expect(rooms.get("r")).toBeUndefined();
    await rooms.publish("r", publishOffer);
    expect(rooms.get("r")?.publisher).toBeDefined();
  });

  it("no publisher is not_found for a viewer; the per-room cap is forbidden, counting viewers being set up", async () => {
    const { rooms } = make({ maxSubsPerRoom: 2 });
    expect(await kindOf(rooms.subscribe("capped", playOffer))).toBe("not_found");
    await rooms.publish("capped", publishOffer);
    const three = await Promise.allSettled([1, 2, 3].map(() => rooms.subscribe("capped", playOffer)));
    expect(three.filter((r) => r.status === "fulfilled")).toHaveLength(2);
    const refused = three.find((r) => r.status === "rejected");
    expect(refused?.status === "rejected" && isDomainError(refused.reason, "forbidden")).toBe(true);
    expect(rooms.get("capped")?.subscribers.size).toBe(2);
    // The cap is per room.
    await rooms.publish("other", publishOffer);
    await rooms.subscribe("other", playOffer);
  });

  it("MAX_ROOMS and MAX_SESSIONS are capacity, counted by limit", async () => {
    const { rooms } = make({ maxRooms: 1, maxSessions: 2 });
    await rooms.publish("a", publishOffer);
    expect(await kindOf(rooms.publish("b", publishOffer))).toBe("capacity");
    await rooms.subscribe("a", playOffer);
    expect(await kindOf(rooms.subscribe("a", playOffer))).toBe("capacity");
    expect(rooms.refused).toEqual({ rooms: 1, sessions: 1, ports: 0 });
    // A session that ends gives its place back.
    const viewer = [...rooms.get("a")!.subscribers.values()][0]!;
    await rooms.endSession("whep", viewer.id);
    await rooms.subscribe("a", playOffer);
  });

  it("an exhausted ICE port range is capacity, and the room is free again", async () => {
    const { rooms } = make({ ice: { ...LOOPBACK_ICE, icePortRange: [41_720, 41_721] } });
    const kinds: (ErrorKind | "ok")[] = [];
    for (const room of ["p1", "p2", "p3"])
      kinds.push(
        await rooms.publish(room, publishOffer).then(
          () => "ok" as const,
          (e: unknown) => (isDomainError(e) ? e.kind : "invalid_input"),
        ),
      );
    expect(kinds[0]).toBe("ok");
    expect(kinds).toContain("capacity");
    expect(rooms.refused.ports).toBeGreaterThan(0);
    expect(rooms.list().map((r) => r.name)).toEqual(["p1", ...["p2", "p3"].filter((_, i) => kinds[i + 1] === "ok")]);
  });
});

describe("Rooms: sessions and lookup", () => {
  it("finds a session by id and kind only; endSession of an unknown id is false", async () => {
    const { rooms } = make();
    const pub = await rooms.publish("look", publishOffer);
    const sub = await rooms.subscribe("look", playOffer);
    expect(pub.session.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(rooms.session("whip", pub.session.id)).toMatchObject({ kind: "whip", session: pub.session, room: rooms.get("look") });
    expect(rooms.session("whep", sub.session.id)).toMatchObject({ kind: "whep", session: sub.session });
    expect(rooms.session("whep", pub.session.id)).toBeUndefined();
    expect(rooms.session("whip", sub.session.id)).toBeUndefined();
    expect(rooms.session("whip", "nope")).toBeUndefined();
    expect(await rooms.endSession("whip", "nope")).toBe(false);
    expect(await rooms.endSession("whip", sub.session.id)).toBe(false);
    expect(rooms.list()).toEqual([expect.objectContaining({ name: "look", hasPublisher: true, tracks: 2, subscribers: 1, codecs: ["opus", "VP8"] })]);
  });

  it("a viewer that leaves leaves the room as it was", async () => {
    const { rooms, ended } = make();
    await rooms.publish("stay", publishOffer);
    const sub = await rooms.subscribe("stay", playOffer);
    expect(await rooms.endSession("whep", sub.session.id)).toBe(true);
    expect(rooms.session("whep", sub.session.id)).toBeUndefined();
    expect(rooms.get("stay")?.subscribers.size).toBe(0);
    expect(rooms.get("stay")?.isClosed).toBe(false);
    expect(ended).toEqual([{ kind: "whep", room: "stay", id: sub.session.id, reason: "delete" }]);
  });
});

describe("Rooms: how rooms end", () => {
  it("a room ends with its publisher: connected viewers are closed as publisher-left, the name is free again", async () => {
    const { rooms, ended, reasonOf } = make();
    const pub = await publishTo(rooms, "live");
    closers.push(pub.client);
    const viewers = [await subscribeTo(rooms, "live"), await subscribeTo(rooms, "live")];
    closers.push(...viewers.map((v) => v.client));
    expect(rooms.get("live")?.subscribers.size).toBe(2);

    expect(await rooms.endSession("whip", pub.session.id)).toBe(true);
    expect(rooms.get("live")).toBeUndefined();
    expect(viewers.map((v) => reasonOf(v.session.id))).toEqual(["publisher-left", "publisher-left"]);
    const reports = new Map(ended.map((e) => [e.id, [e.kind, e.reason]]));
    expect([...reports.values()]).toEqual([
      ["whip", "delete"],
      ["whep", "publisher-left"],
      ["whep", "publisher-left"],
    ]);
    expect([pub.session.id, ...viewers.map((v) => v.session.id)].map((id) => rooms.session("whip", id) ?? rooms.session("whep", id))).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect([pub.session, ...viewers.map((v) => v.session)].every((x) => x.closed)).toBe(true);
    // A new publisher may take the room at once.
    const again = await rooms.publish("live", publishOffer);
    expect(rooms.session("whip", again.session.id)?.room).toBe(rooms.get("live"));
    expect(rooms.get("live")?.publisher?.closed).toBe(false);
  });

  // The registry's end listener closes the room, which closes the publisher again: that second
  // close must neither release the publisher again nor report its end twice.
  it("a publisher's end is reported once, also when the publisher ends first", async () => {
    const { rooms, ended, log } = make();
    const pub = await rooms.publish("once", publishOffer);
    await rooms.endSession("whip", pub.session.id);
    expect(ended.filter((e) => e.kind === "whip")).toHaveLength(1);
    expect(log.lines.filter((l) => l.msg === "publisher ended")).toHaveLength(1);
  });

  it("closeRoom ends a room as admin-close, and is false for a room that does not exist", async () => {
    const { rooms, ended, reasonOf } = make();
    await rooms.publish("admin", publishOffer);
    const sub = await rooms.subscribe("admin", playOffer);
    expect(await rooms.closeRoom("missing", "admin-close")).toBe(false);
    expect(await rooms.closeRoom("admin", "admin-close")).toBe(true);
    expect(reasonOf(sub.session.id)).toBe("admin-close");
    expect(ended.map((e) => e.reason)).toEqual(["admin-close", "admin-close"]);
    expect(await rooms.closeRoom("admin", "admin-close")).toBe(false);
  });

  it("close() ends every room once, cascading to viewers and consumers, is idempotent, and lets nothing new in", async () => {
    const consumerCloses: string[] = [];
    const { rooms, ended } = make({
      consumers: [(room, track) => ({ close: () => void consumerCloses.push(`${room.name}:${track.kind}`) })],
    });
    await rooms.publish("x", publishOffer);
    await rooms.publish("y", publishOffer);
    await rooms.subscribe("x", playOffer);
    await Promise.all([rooms.close(), rooms.close()]);
    await rooms.close();
    expect(rooms.all().length).toBe(0);
    expect(consumerCloses.sort()).toEqual(["x:audio", "x:video", "y:audio", "y:video"]);
    expect(ended).toHaveLength(3);
    expect(new Set(ended.map((e) => e.reason))).toEqual(new Set(["shutdown"]));
    await expect(rooms.publish("z", publishOffer)).rejects.toThrow(/shutting down/);
    expect(rooms.get("z")).toBeUndefined();
  });
});

/** A RoomSource with one video track that notes when it is closed. */
function fakeSource(calls: string[]): RoomSource {
  let closed = false;
  return {
    id: "source",
    tracks: [{ kind: "video", index: 0 } as PublishedTrack],
    packets: 0,
    bytes: 0,
    get closed() {
      return closed;
    },
    close: async (reason: EndReason) => {
      closed = true;
      calls.push(`publisher:${reason}`);
    },
    onEnd: () => undefined,
  };
}

describe("Room.close", () => {
  it("closes its publisher, then its viewers, then its consumers, once; a failing consumer does not keep the others open", async () => {
    const calls: string[] = [];
    const room = new Room("r");
    room.publisher = fakeSource(calls);
    const viewer = { close: async (reason: EndReason) => void calls.push(`viewer:${reason}`) };
    room.subscribers.set("v", viewer as unknown as Subscriber);
    const failing: TrackConsumer = {
      close: () => {
        calls.push("consumer:1");
        throw new Error("disk full");
      },
    };
    const fine: TrackConsumer = { close: async () => void calls.push("consumer:2") };
    room.attachConsumers([() => failing, () => undefined, () => fine]);
    await Promise.all([room.close("delete"), room.close("shutdown")]);
    await room.close("delete");
    expect(room.isClosed).toBe(true);
    expect(calls).toEqual(["publisher:delete", "viewer:publisher-left", "consumer:1", "consumer:2"]);
  });

  it("viewers end as admin-close or shutdown when the room does, publisher-left otherwise", async () => {
    for (const [reason, viewerReason] of [
      ["admin-close", "admin-close"],
      ["shutdown", "shutdown"],
      ["timeout", "publisher-left"],
      ["ice-failed", "publisher-left"],
    ] as const) {
      const calls: string[] = [];
      const room = new Room("r");
      room.publisher = fakeSource(calls);
      room.subscribers.set("v", { close: async (r: EndReason) => void calls.push(`viewer:${r}`) } as unknown as Subscriber);
      await room.close(reason);
      expect(calls).toEqual([`publisher:${reason}`, `viewer:${viewerReason}`]);
    }
  });
});
