// The per-IP limit: a steady RATE_LIMIT_RPS with a reserve up to RATE_LIMIT_BURST, on one node
// and shared by several nodes through a real redis-server, per-node while Redis is away.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRateLimit } from "../../src/http/guard.js";
import { sleep } from "../helpers/net.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startRedis, type RedisProc } from "./processes.js";

async function takeMany(take: (ip: string) => Promise<string | undefined>, ip: string, n: number): Promise<number> {
  let passed = 0;
  for (let i = 0; i < n; i++) if ((await take(ip)) === undefined) passed++;
  return passed;
}

describe("rate limit on one node", () => {
  it("a burst of BURST passes, the next waits about a second, not a whole window", async () => {
    const limit = createRateLimit(5, 40);
    expect(await takeMany(limit.take, "1.1.1.1", 40)).toBe(40);
    expect(await limit.take("1.1.1.1")).toBe("1");
    await sleep(1050);
    // The steady rate is back after a second, although the reserve is spent.
    expect(await takeMany(limit.take, "1.1.1.1", 6)).toBe(5);
    // Others are not affected.
    expect(await limit.take("2.2.2.2")).toBeUndefined();
  });

  it("below one request per second the steady part is one request per 1/RPS seconds", async () => {
    const limit = createRateLimit(0.01, 1);
    expect(await limit.take("3.3.3.3")).toBeUndefined();
    expect(Number(await limit.take("3.3.3.3"))).toBeGreaterThan(90);
  });
});

const need = requireOrSkip("redis-server");

describe.skipIf(!need.ok)(need.title("rate limit shared by nodes through Redis"), () => {
  let redis: RedisProc;
  const clients: Redis[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await redis?.kill();
  });

  const client = async (): Promise<Redis> => {
    const c = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
    c.on("error", () => undefined);
    clients.push(c);
    await new Promise<void>((resolve) => (c.status === "ready" ? resolve() : c.once("ready", () => resolve())));
    return c;
  };

  it("a burst spread over three nodes meets one shared bucket", async () => {
    const nodes = [createRateLimit(2, 10, await client()), createRateLimit(2, 10, await client()), createRateLimit(2, 10, await client())];
    let passed = 0;
    for (let i = 0; i < 30; i++) if ((await nodes[i % 3]!.take("9.9.9.9")) === undefined) passed++;
    expect(passed).toBe(10);
  });

  it("while Redis is away each node limits on its own, and never fails", async () => {
    const c = await client();
    const limit = createRateLimit(2, 10, c);
    await redis.kill();
    await sleep(200);
    expect(await takeMany(limit.take, "8.8.8.8", 12)).toBe(10);
  });
});
