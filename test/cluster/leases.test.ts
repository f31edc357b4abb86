// Fenced room leases on a real redis-server: one holder at a time, refresh only while the value
// is still the holder's, a lapsed lease renewed when nobody took it, and given up when someone did.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RoomLeases } from "../../src/cluster/leases.js";
import { keys } from "../../src/cluster/redis.js";
import type { Logger } from "../../src/logger.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startRedis, type RedisProc } from "./processes.js";

const need = requireOrSkip("redis-server");
const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Logger;

describe.skipIf(!need.ok)(need.title("room leases"), () => {
  let redis: RedisProc;
  let client: Redis;
  const leases: RoomLeases[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  afterAll(async () => {
    for (const l of leases) l.close();
    client.disconnect();
    await redis?.kill();
  });

  const node = (id: string, lost: string[]): RoomLeases => {
    const l = new RoomLeases(client, id, quiet, (room) => lost.push(room));
    leases.push(l);
    return l;
  };

  it("one holder; the owner is named; released only by its holder", async () => {
    const a = node("a", []);
    const b = node("b", []);
    expect(await a.claim("r1", '{"tracks":[]}')).toBe(true);
    expect(await b.claim("r1")).toBe(false);
    expect(await a.claim("r1")).toBe(false);
    expect(await b.owner("r1")).toBe("a");
    expect(await b.meta("r1")).toBe('{"tracks":[]}');
    b.release("r1"); // not b's: nothing happens
    expect(await b.owner("r1")).toBe("a");
    a.release("r1");
    await new Promise((r) => setTimeout(r, 50));
    expect(await b.owner("r1")).toBeUndefined();
    expect(await b.claim("r1")).toBe(true);
    // A fresh epoch each claim: a stale holder's value never matches again.
    expect(await client.get(keys.owner("r1"))).toMatch(/^b:2$/);
  });

  it("a lease taken by another node ends the room here; a lapsed one nobody took is renewed", async () => {
    const lostA: string[] = [];
    const a = node("a2", lostA);
    expect(await a.claim("r2")).toBe(true);
    expect(await a.claim("r3")).toBe(true);
    // r2 lapsed and another node took it meanwhile (a stalled process, a partition).
    await client.set(keys.owner("r2"), "other:9", "PX", 10_000);
    // r3 lapsed and nobody took it (Redis restarted empty).
    await client.del(keys.owner("r3"));
    await a.refreshAll();
    expect(lostA).toEqual(["r2"]);
    expect(a.holds("r2")).toBe(false);
    expect(await client.get(keys.owner("r2"))).toBe("other:9");
    expect(await a.owner("r3")).toBe("a2");
    expect(await client.pttl(keys.owner("r3"))).toBeGreaterThan(9000);
  });
});
