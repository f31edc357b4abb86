// The cascade row: one publisher on an origin, two edges pulling the room from it (the cluster of
// README "Running several nodes", three processes on one Redis), viewers on all three. Measured:
// the origin's CPU (it sends one stream per edge, whatever the edges' audiences), and the extra
// latency of the hop, frame by frame: when a frame reaches an edge's viewer minus when it reached
// the origin's viewer. Target on loopback: p50 under 10 ms. Writes bench/results/cascade.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { sleep } from "../test/helpers/net.js";
import { requireOrSkip } from "../test/helpers/requirements.js";
import { playStream, type WhepClient } from "../test/helpers/whep-client.js";
import { publishTestStream, type WhipClient } from "../test/helpers/whip-client.js";
import { startNode, startRedis, type NodeProc, type RedisProc } from "../test/cluster/processes.js";

const need = requireOrSkip("redis-server", "ffmpeg");
const VIEWERS_PER_NODE = Number(process.env.CASCADE_VIEWERS ?? 3);
const MEASURE_MS = Number(process.env.CASCADE_SECONDS ?? 10) * 1000;

let redis: RedisProc;
let nodes: NodeProc[] = [];
const open: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];

beforeAll(async () => {
  if (!need.ok) return;
  redis = await startRedis();
  nodes = await Promise.all(["origin", "edge-1", "edge-2"].map((id) => startNode(id, redis.url)));
});

afterAll(async () => {
  await Promise.all(open.splice(0).map((x) => x.close({ vanish: true })));
  await Promise.all(nodes.map((n) => n.kill()));
  await redis?.kill();
});

async function cpuSeconds(node: NodeProc): Promise<number> {
  const text = await (await fetch(`${node.base}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) if (/^process_cpu_(user|system)_seconds_total /.test(line)) total += Number(line.split(" ").pop());
  return total;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

it.skipIf(!need.ok)(need.title("cascade: origin + two edges"), async () => {
  const [origin, edge1, edge2] = nodes as [NodeProc, NodeProc, NodeProc];
  const pub: WhipClient = (
    await publishTestStream(origin.whip("cascade"), { video: { codec: "VP8" }, audio: false, source: { width: 1280, height: 720, bitrateKbps: 2500, gop: 60 } })
  ).client;
  open.push(pub);
  await sleep(500);
  const viewersOf = async (node: NodeProc): Promise<WhepClient[]> => {
    const out: WhepClient[] = [];
    for (let i = 0; i < VIEWERS_PER_NODE; i++) {
      const { client } = await playStream(node.whep("cascade"), { audio: false });
      open.push(client);
      out.push(client);
    }
    return out;
  };
  const atOrigin = await viewersOf(origin);
  const atEdges = [...(await viewersOf(edge1)), ...(await viewersOf(edge2))];
  await Promise.all([...atOrigin, ...atEdges].map((v) => v.waitForKeyframes(1, 15_000)));

  // Frame arrival at one origin viewer, by RTP timestamp (kept end to end), against every edge viewer.
  const originAt = new Map<number, number>();
  const hops: number[] = [];
  const pending: { timestamp: number; at: number }[] = [];
  const stopOrigin = atOrigin[0]!.onFrame((f) => {
    if (f.kind === "video") originAt.set(f.timestamp, f.at);
  });
  const stops = atEdges.map((v) => v.onFrame((f) => f.kind === "video" && pending.push({ timestamp: f.timestamp, at: f.at })));
  const cpu0 = await cpuSeconds(origin);
  const t0 = performance.now();
  await sleep(MEASURE_MS);
  const cpu1 = await cpuSeconds(origin);
  const elapsed = (performance.now() - t0) / 1000;
  stopOrigin();
  for (const s of stops) s();
  for (const p of pending) {
    const o = originAt.get(p.timestamp);
    if (o !== undefined) hops.push(p.at - o);
  }
  const row = {
    viewersPerNode: VIEWERS_PER_NODE,
    seconds: Number(elapsed.toFixed(1)),
    originCpuPercent: Number(((100 * (cpu1 - cpu0)) / elapsed).toFixed(1)),
    originEdgeSessions: Number((await (await fetch(`${origin.base}/metrics`)).text()).match(/^cluster_edge_sessions (\d+)/m)?.[1] ?? NaN),
    framesMatched: hops.length,
    hopMsP50: Number(percentile(hops, 50).toFixed(2)),
    hopMsP95: Number(percentile(hops, 95).toFixed(2)),
    edgeFramesPerViewer: Math.round(atEdges.reduce((n, v) => n + v.video.frames, 0) / atEdges.length),
  };
  mkdirSync("bench/results", { recursive: true });
  writeFileSync("bench/results/cascade.json", JSON.stringify(row, null, 2));
  console.log(
    "\n| cascade | viewers/node | origin CPU | edges on origin | hop p50 | hop p95 |\n|---|---|---|---|---|---|\n" +
      `| origin + 2 edges | ${row.viewersPerNode} | ${row.originCpuPercent} % | ${row.originEdgeSessions} | ${row.hopMsP50} ms | ${row.hopMsP95} ms |\n`,
  );
  expect(row.framesMatched).toBeGreaterThan(0);
  // The origin serves each edge once, whatever the edges' audiences.
  expect(row.originEdgeSessions).toBe(2);
});
