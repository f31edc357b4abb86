// Three nodes as separate processes on loopback sharing one real redis-server: fenced room
// ownership, edge pulls that viewers on other nodes decode, session URLs that work on any node,
// cluster-wide views and limits, drain, and kill -9 of an owner and of Redis.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../helpers/net.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { playStream, type WhepClient } from "../helpers/whep-client.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";
import { startNode, startRedis, type NodeProc, type RedisProc } from "./processes.js";

const need = requireOrSkip("redis-server", "ffmpeg");
const SMALL = { width: 320, height: 240, bitrateKbps: 300, gop: 30 } as const;
const ADMIN = { Authorization: "Bearer admin-token-for-tests" };

interface ClusterRoom {
  name: string;
  owner: string;
  subscribers: number;
  viewers: Record<string, number>;
}

async function rooms(node: NodeProc): Promise<ClusterRoom[]> {
  return (await (await fetch(`${node.base}/api/rooms`)).json()) as ClusterRoom[];
}

async function metric(node: NodeProc, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${node.base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.split(" ").pop());
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch {
      // not yet
    }
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await sleep(250);
  }
}

/** A publisher; a fresh node process under a loaded machine can miss the first DTLS handshake, so up to three tries. */
async function publish(url: string, audio = true): Promise<Awaited<ReturnType<typeof publishTestStream>>> {
  for (let i = 0; ; i++) {
    try {
      return await publishTestStream(url, { video: { codec: "VP8" }, audio, source: SMALL });
    } catch (err) {
      if (i >= 2) throw err;
      await sleep(500);
    }
  }
}

/** A viewer that got its first keyframe (same caveat as publish: up to three tries). */
async function play(url: string): Promise<Awaited<ReturnType<typeof playStream>>> {
  for (let i = 0; ; i++) {
    let started: Awaited<ReturnType<typeof playStream>> | undefined;
    try {
      started = await playStream(url);
      await started.client.waitForKeyframes(1, 6000);
      return started;
    } catch (err) {
      await started?.client.close();
      if (i >= 2) throw err;
      await sleep(500);
    }
  }
}

describe.skipIf(!need.ok)(need.title("a cluster of three nodes on one Redis"), () => {
  let redis: RedisProc;
  let a: NodeProc;
  let b: NodeProc;
  let c: NodeProc;
  const open: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];
  const keep = <T extends { close(o?: { vanish?: boolean }): Promise<void> }>(x: T): T => {
    open.push(x);
    return x;
  };

  beforeAll(async () => {
    redis = await startRedis();
    const env = {
      MAX_SUBS_PER_ROOM: "4",
      ADMIN_TOKEN: "admin-token-for-tests",
      DRAIN_SECONDS: "4",
      CLUSTER_MAX_DIRECT_EDGES: "1",
      LOG_LEVEL: process.env.CLUSTER_TEST_LOGS ? "info" : "warn",
    };
    [a, b, c] = await Promise.all([startNode("node-a", redis.url, env), startNode("node-b", redis.url, env), startNode("node-c", redis.url, env)]);
  }, 120_000);

  afterAll(async () => {
    if (process.env.CLUSTER_TEST_LOGS) {
      const { writeFileSync } = await import("node:fs");
      for (const n of [a, b, c]) if (n) writeFileSync(`${process.env.CLUSTER_TEST_LOGS}/${n.id}.log`, n.output());
    }
    await Promise.all(open.splice(0).map((x) => x.close({ vanish: true })));
    await Promise.all([a?.kill(), b?.kill(), c?.kill()]);
    await redis?.kill();
  });

  let pub: WhipClient;
  const viewers: WhepClient[] = [];

  it("one publisher per room over the cluster; its Location names its node", async () => {
    const { client, result } = await publish(a.whip("show"));
    pub = keep(client);
    expect(result.status).toBe(201);
    expect(result.location).toMatch(/\/api\/whip\/session\/node-a\./);
    await sleep(300);
    for (const other of [b, c, a]) {
      const res = await fetch(other.whip("show"), { method: "POST", headers: { "content-type": "application/sdp" }, body: result.answer });
      expect(res.status).toBe(409);
    }
  }, 60_000);

  it("viewers on other nodes decode the room, pulled once per node; the origin sees edges, not viewers", async () => {
    for (const node of [b, b, c]) {
      const { client, result } = await play(node.whep("show"));
      viewers.push(keep(client));
      expect(result.location).toMatch(new RegExp(`/api/whep/session/${node.id}\\.`));
    }
    for (const v of viewers) {
      await v.waitForFrames(20, 15_000);
      await v.waitForPackets(50, "audio", 15_000);
      expect(v.video.codec?.name.toUpperCase()).toBe("VP8");
      expect(v.video.firstFrameWasKeyframe).toBe(true);
    }
    // Each node pulls once, whatever its viewers. c pulls from b, a has its one direct edge
    // (CLUSTER_MAX_DIRECT_EDGES=1), unless that pull failed to connect and c fell back to a.
    expect(await metric(b, "cluster_edge_pulls")).toBe(1);
    expect(await metric(c, "cluster_edge_pulls")).toBe(1);
    expect(await metric(a, "cluster_edge_sessions")).toBeLessThanOrEqual(2);
    expect(await metric(b, "cluster_edge_sessions")).toBeLessThanOrEqual(1);
    expect((await metric(a, "cluster_edge_sessions"))! + (await metric(b, "cluster_edge_sessions"))!).toBe(2);
    expect(await metric(a, "cluster_nodes_alive")).toBe(3);
    // Every node lists the room with its owner and its viewers over the cluster.
    for (const node of [a, b, c]) {
      const list = await eventually(
        "viewers in /api/rooms",
        () => rooms(node),
        (l) => l[0]?.subscribers === 3,
      );
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({ name: "show", owner: "node-a", subscribers: 3, viewers: { "node-b": 2, "node-c": 1 } });
    }
  }, 60_000);

  it("MAX_SUBS_PER_ROOM counts viewers on every node", async () => {
    const { client } = await play(a.whep("show"));
    viewers.push(keep(client));
    await eventually(
      "four viewers",
      () => rooms(c),
      (l) => l[0]?.subscribers === 4,
    );
    const res = await fetch(c.whep("show"), { method: "POST", headers: { "content-type": "application/sdp" }, body: await viewers[0]!.createOffer() });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: "subscriber limit reached" });
  }, 30_000);

  it("session URLs work on any node: PATCH and DELETE sent to the wrong node are forwarded", async () => {
    const v = viewers.pop()!; // the viewer on a
    const wrong = v.location!.replace(a.base, c.base);
    const patch = await fetch(wrong, {
      method: "PATCH",
      headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": "*" },
      body: "a=end-of-candidates\r\n",
    });
    expect(patch.status).toBe(204);
    const del = await fetch(wrong, { method: "DELETE" });
    expect(del.status).toBe(200);
    expect((await fetch(wrong, { method: "DELETE" })).status).toBe(404);
    await eventually(
      "three viewers",
      () => rooms(b),
      (l) => l[0]?.subscribers === 3,
    );
  }, 30_000);

  it("only nodes carry CLUSTER_SECRET; a wrong one is refused", async () => {
    const res = await fetch(`${a.base}/api/rooms`, { headers: { "x-cluster-secret": "not-the-cluster-secret" } });
    expect(res.status).toBe(401);
    expect((await fetch(`${a.base}/api/admin/rooms/show/close`, { method: "POST", headers: { "x-cluster-secret": "cluster-secret-for-tests" } })).status).toBe(
      401,
    );
  });

  it("recordings of every node are listed and served on any node", async () => {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(`${a.recordDir}/clip_1710000001.webm`, "hello from a");
    const list = (await (await fetch(`${c.base}/api/records`)).json()) as { name: string; url: string }[];
    expect(list.map((r) => r.name)).toContain("clip_1710000001.webm");
    const whole = await fetch(`${c.base}/records/clip_1710000001.webm`);
    expect(whole.status).toBe(200);
    expect(await whole.text()).toBe("hello from a");
    const part = await fetch(`${b.base}/records/clip_1710000001.webm`, { headers: { range: "bytes=6-9" } });
    expect(part.status).toBe(206);
    expect(await part.text()).toBe("from");
    expect((await fetch(`${c.base}/records/clip_1710000002.webm`)).status).toBe(404);
  });

  it("admin close from a third node ends the room everywhere", async () => {
    const res = await fetch(`${c.base}/api/admin/rooms/show/close`, { method: "POST", headers: ADMIN });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ closed: "show" });
    for (const node of [a, b, c])
      await eventually(
        "no rooms",
        () => rooms(node),
        (l) => l.length === 0,
      );
    await eventually(
      "pulls ended",
      () => metric(b, "cluster_edge_pulls"),
      (n) => n === 0,
    );
    await pub.close({ vanish: true });
  }, 30_000);

  it("kill -9 of an owner: its room can be published on another node within 15 s", async () => {
    const { client } = await publish(a.whip("phoenix"), false);
    keep(client);
    const { client: viewer } = await play(b.whep("phoenix"));
    keep(viewer);
    const killedAt = performance.now();
    await a.kill();
    await viewer.close({ vanish: true });
    const { client: again, result } = await eventually(
      "a publish on node-b",
      () => publishTestStream(b.whip("phoenix"), { video: { codec: "VP8" }, audio: false, source: SMALL }),
      (r) => r.result.status === 201,
      20_000,
    );
    keep(again);
    expect(result.location).toMatch(/node-b\./);
    expect(performance.now() - killedAt).toBeLessThan(15_000);
    const list = await eventually(
      "node-a gone",
      () => rooms(c),
      (l) => l.some((r) => r.name === "phoenix" && r.owner === "node-b"),
    );
    expect(list.find((r) => r.name === "phoenix")?.owner).toBe("node-b");
    await eventually(
      "two nodes",
      () => metric(c, "cluster_nodes_alive"),
      (n) => n === 2,
    );
  }, 60_000);

  it("kill -9 of Redis: nodes stay up and serve their rooms, /healthz says degraded, keys come back", async () => {
    const port = redis.port;
    await redis.kill();
    for (const node of [b, c]) {
      const health = await eventually(
        "degraded",
        () => fetch(`${node.base}/healthz`).then(async (r) => [r.status, await r.text()] as const),
        ([, t]) => t === "degraded",
      );
      expect(health[0]).toBe(200);
    }
    // The room published on b still plays on b.
    const { client } = await play(b.whep("phoenix"));
    keep(client);
    await client.waitForFrames(10);
    // Rate limits fall back to each node's own: no 500s.
    expect((await fetch(`${c.base}/api/rooms`)).status).toBe(200);
    redis = await startRedis(port);
    for (const node of [b, c])
      await eventually(
        "ok again",
        () => fetch(`${node.base}/healthz`).then((r) => r.text()),
        (t) => t === "ok",
      );
    // b re-took its lease: c sees the room and its owner again, and a publish on c is refused.
    await eventually(
      "rebuilt",
      () => rooms(c),
      (l) => l.some((r) => r.name === "phoenix" && r.owner === "node-b"),
    );
    const res = await fetch(c.whip("phoenix"), { method: "POST", headers: { "content-type": "application/sdp" }, body: await client.createOffer() });
    expect(res.status).toBe(409);
  }, 60_000);

  it("drain: new sessions go to a live node, viewers are closed after the grace", async () => {
    const { client: viewer } = await play(c.whep("phoenix"));
    keep(viewer);
    await eventually(
      "a viewer on c",
      () => rooms(b),
      (l) => l.find((r) => r.name === "phoenix")?.viewers["node-c"] === 1,
    );
    const res = await fetch(`${c.base}/api/admin/drain`, { method: "POST", headers: ADMIN });
    expect(res.status).toBe(202);
    await eventually(
      "c draining",
      () => metric(c, "cluster_draining"),
      (n) => n === 1,
    );
    const redirected = await fetch(c.whep("phoenix"), {
      method: "POST",
      headers: { "content-type": "application/sdp" },
      body: await viewer.createOffer(),
      redirect: "manual",
    });
    expect(redirected.status).toBe(307);
    expect(redirected.headers.get("location")).toBe(`${b.base}/api/whep/play/phoenix`);
    // After the grace (up to 5 s) c's viewer is closed; b's publisher is untouched.
    await eventually(
      "c's viewer closed",
      () => rooms(b),
      (l) => l.find((r) => r.name === "phoenix")?.viewers["node-c"] === undefined,
    );
    expect((await rooms(b)).find((r) => r.name === "phoenix")?.owner).toBe("node-b");
  }, 30_000);
});
