// Cluster jobs on a real redis-server, with runners that only record: a stored job runs on one
// node; a job whose node left the registry is taken over before its lease lapses, by one node
// only; a free job nobody runs is started by a scan; a job whose lease was taken stops here.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterJobs, type JobRunner } from "../../src/cluster/jobs.js";
import { keys } from "../../src/cluster/redis.js";
import type { Logger } from "../../src/logger.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startRedis, type RedisProc } from "./processes.js";

const need = requireOrSkip("redis-server");
const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Logger;

interface Recorder extends JobRunner {
  started: string[];
  stopped: string[];
}
const recorder = (): Recorder => {
  const r: Recorder = {
    started: [],
    stopped: [],
    start: async (id, spec) => void r.started.push(`${id}=${spec}`),
    stop: async (id) => void r.stopped.push(id),
  };
  return r;
};

describe.skipIf(!need.ok)(need.title("cluster jobs"), () => {
  let redis: RedisProc;
  let client: Redis;
  const all: ClusterJobs[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  afterAll(async () => {
    for (const j of all) j.close();
    client.disconnect();
    await redis?.kill();
  });

  /** A node's jobs, registered as alive (its registry entry) unless `alive` is false. */
  const node = async (id: string, alive = true): Promise<{ jobs: ClusterJobs; runner: Recorder }> => {
    const jobs = new ClusterJobs(client, id, quiet, () => true);
    all.push(jobs);
    const runner = recorder();
    jobs.handle("stream", runner);
    if (alive) await client.hset(keys.node(id), { url: `http://${id}` });
    return { jobs, runner };
  };

  it("a job taken here is this node's; another node cannot take it while its node is alive", async () => {
    const a = await node("a");
    const b = await node("b");
    await a.jobs.take("stream", "s1");
    await a.jobs.put("stream", "s1", '{"rtmpUrl":"rtmp://x/live/1"}');
    expect(await b.jobs.owner("stream", "s1")).toBe("a");
    await expect(b.jobs.take("stream", "s1")).rejects.toMatchObject({ kind: "capacity" });
    await b.jobs.scan();
    expect(b.runner.started).toEqual([]);
    expect(await b.jobs.remove("stream", "s1")).toBe(true);
    expect(await a.jobs.remove("stream", "s1")).toBe(false);
  });

  it("the job of a node gone from the registry is taken over by one scanning node, before its lease lapses", async () => {
    const dead = await node("dead", false);
    const c = await node("c");
    const d = await node("d");
    await dead.jobs.take("stream", "s2");
    await dead.jobs.put("stream", "s2", "spec2");
    await Promise.all([c.jobs.scan(), d.jobs.scan()]);
    await new Promise((r) => setTimeout(r, 50));
    const runners = [c, d].filter((n) => n.runner.started.length > 0);
    expect(runners).toHaveLength(1);
    expect(runners[0]!.runner.started).toEqual(["s2=spec2"]);
    expect(await c.jobs.owner("stream", "s2")).toBe(runners[0] === c ? "c" : "d");
    // The dead node's lease is someone else's now: were it alive after all, it stops its copy.
    await client.hset(keys.node("dead"), { url: "http://dead" });
    await dead.jobs.refreshAll();
    expect(dead.runner.stopped).toEqual(["s2"]);
  });

  it("a stored job nobody holds is started by a scan; take with adopt starts it before the command", async () => {
    // The earlier nodes' scans would race for these jobs.
    for (const j of all) j.close();
    await client.del(keys.jobs);
    const e = await node("e");
    await client.hset(keys.jobs, "stream:s3", "spec3");
    await e.jobs.scan();
    await new Promise((r) => setTimeout(r, 50));
    expect(e.runner.started).toEqual(["s3=spec3"]);
    expect(e.jobs.holds("stream", "s3")).toBe(true);
    e.jobs.close();
    const g = await node("g");
    g.jobs.close(); // no scans: only the command starts it
    await client.hset(keys.jobs, "stream:s4", "spec4");
    await g.jobs.take("stream", "s4", true);
    expect(g.runner.started).toEqual(["s4=spec4"]);
  });
});
