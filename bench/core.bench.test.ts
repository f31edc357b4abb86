// Core numbers of the SFU, measured in one run: join latency (WHEP POST -> first keyframe at the
// subscriber) and server CPU per forwarded packet with 1 publisher and N subscribers. The server
// runs in its own process (the built `dist/`), so its CPU is not mixed with the peers'.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, it } from "vitest";
import { sleep } from "../test/helpers/net.js";
import { playStream, type WhepClient } from "../test/helpers/whep-client.js";
import { publishTestStream } from "../test/helpers/whip-client.js";

let server: ChildProcess;
let base: string;
const results: Record<string, unknown> = {};

async function metrics(): Promise<Map<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const cpuSeconds = (m: Map<string, number>) => (m.get("process_cpu_user_seconds_total") ?? 0) + (m.get("process_cpu_system_seconds_total") ?? 0);

/** The built server in its own process; resolves with its base URL once /healthz answers. */
async function startBenchServer(env: Record<string, string> = {}): Promise<{ proc: ChildProcess; base: string }> {
  const port = 19000 + Math.floor(Math.random() * 500);
  const proc = spawn(process.execPath, ["dist/main.js"], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", ICE_HOSTS: "127.0.0.1", ICE_ADDITIONAL_HOSTS: "127.0.0.1", LOG_LEVEL: "warn", RATE_LIMIT_RPS: "1000", RATE_LIMIT_BURST: "1000", ...env },
    stdio: "inherit",
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return { proc, base: url };
    await sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error("server did not start");
}

beforeAll(async () => {
  const root = path.resolve(".");
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { stdio: "inherit" });
  ({ proc: server, base } = await startBenchServer());
});

afterAll(async () => {
  server?.kill("SIGTERM");
  mkdirSync("bench/results", { recursive: true });
  writeFileSync("bench/results/core.json", JSON.stringify(results, null, 2));
  console.log(JSON.stringify(results, null, 2));
});

async function joins(base: string): Promise<{ p50: number; p95: number; max: number; failedToConnect: number }> {
  const { client: pub } = await publishTestStream(`${base}/api/whip/publish/join`, {
    video: { codec: "VP8" },
    audio: false,
    source: { gop: 30, bitrateKbps: 800, width: 640, height: 360, pattern: "testsrc" },
  });
  try {
    await sleep(1000);
    const times: number[] = [];
    // A join whose connection never comes up is counted, not hidden: it says how often that happens.
    let failedToConnect = 0;
    while (times.length < 20 && failedToConnect < 5) {
      await sleep(Math.random() * 1000);
      let subscriber: WhepClient;
      try {
        subscriber = (await playStream(`${base}/api/whep/play/join`, { audio: false })).client;
      } catch {
        failedToConnect++;
        continue;
      }
      const t0 = Date.now();
      while (subscriber.video.firstKeyframeMs === undefined && Date.now() - t0 < 5000) await sleep(10);
      times.push(subscriber.video.firstKeyframeMs ?? Infinity);
      await subscriber.close();
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => Math.round(times[Math.max(0, Math.ceil(q * times.length) - 1)]);
    return { p50: at(0.5), p95: at(0.95), max: at(1), failedToConnect };
  } finally {
    await pub.close();
  }
}

it("join: WHEP POST to first keyframe, 20 joins at random points of a 1 s GOP (FFmpeg publisher, ignores PLI)", async () => {
  const withoutCache = await joins(base);
  const cached = await startBenchServer({ GOP_CACHE: "true" });
  try {
    const withCache = await joins(cached.base);
    results.join = { unit: "ms", publisherHonoursPli: false, withoutGopCache: withoutCache, withGopCache: withCache };
  } finally {
    cached.proc.kill("SIGTERM");
  }
});

/** Server CPU per forwarded packet for one forwarding path, against its own server process. */
async function cpuTable(serverBase: string, metricsOf: () => Promise<Map<string, number>>): Promise<Record<string, unknown>[]> {
  const { client: pub } = await publishTestStream(`${serverBase}/api/whip/publish/cpu`, {
    video: { codec: "VP8" },
    audio: true,
    source: { gop: 60, bitrateKbps: 1500, width: 640, height: 360, pattern: "testsrc" },
  });
  const table: Record<string, unknown>[] = [];
  const subs: WhepClient[] = [];
  try {
    await sleep(1500);
    let baseline = 0;
    for (const n of [0, 1, 10, 20]) {
      while (subs.length < n) subs.push((await playStream(`${serverBase}/api/whep/play/cpu`)).client);
      await sleep(1500);
      const before = await metricsOf();
      const start = Date.now();
      await sleep(5000);
      const after = await metricsOf();
      const seconds = (Date.now() - start) / 1000;
      const cpu = cpuSeconds(after) - cpuSeconds(before);
      const inPackets = (after.get('live_rtp_packets_total{room="cpu"}') ?? 0) - (before.get('live_rtp_packets_total{room="cpu"}') ?? 0);
      if (n === 0) baseline = cpu;
      table.push({
        subscribers: n,
        serverCpuPercent: Math.round((cpu / seconds) * 1000) / 10,
        packetsInPerSecond: Math.round(inPackets / seconds),
        marginalCpuUsPerForwardedPacket: n === 0 ? null : Math.round(((cpu - baseline) * 1e6) / (inPackets * n)),
        videoGapsPerSubscriber: subs.length ? Math.round(subs.reduce((s, x) => s + x.video.sequenceGaps, 0) / subs.length) : 0,
      });
    }
  } finally {
    await Promise.all(subs.map((s) => s.close()));
    await pub.close();
  }
  return table;
}

it("cpu: 1 publisher (VP8 1.5 Mbps + Opus) and N subscribers, werift's send path against the fast path", async () => {
  results.cpu = {};
  for (const forwardPath of ["werift", "fast"]) {
    const srv = await startBenchServer({ FORWARD_PATH: forwardPath });
    try {
      const metricsOf = async () => {
        const text = await (await fetch(`${srv.base}/metrics`)).text();
        const out = new Map<string, number>();
        for (const line of text.split("\n")) {
          if (line.startsWith("#") || line === "") continue;
          const i = line.lastIndexOf(" ");
          out.set(line.slice(0, i), Number(line.slice(i + 1)));
        }
        return out;
      };
      (results.cpu as Record<string, unknown>)[forwardPath] = await cpuTable(srv.base, metricsOf);
    } finally {
      srv.proc.kill("SIGTERM");
    }
  }
});
