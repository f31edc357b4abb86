// Core numbers of the SFU, measured in one run so their ratios hold on a noisy machine: join
// latency (WHEP POST -> first keyframe at the subscriber), the per-packet floor (SRTP protect +
// dgram.send in this Node), and per N subscribers of a 2.5 Mbit/s VP8 room the server's CPU per
// forwarded packet, event-loop delay, loss, NACKs and RSS, for each forwarding path (werift, fast,
// native, and fast and native with 2 fan-out workers); and the capacity of one core with cheap
// viewers (capacity.ts). The server runs in its own process (the built `dist/`) pinned to one
// core, the peers on the other.
// Writes bench/results/latest.json and prints the tables of BENCHMARKS.md.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, it } from "vitest";
import { resolveFfmpeg } from "../src/bridges/ffmpeg-path.js";
import { sleep } from "../test/helpers/net.js";
import { cpuSeconds as processCpuSeconds, fanoutWorkerPids } from "../test/helpers/procfs.js";
import { playStream, type WhepClient } from "../test/helpers/whep-client.js";
import { publishTestStream } from "../test/helpers/whip-client.js";
import { capacityTable, type CapacityRow } from "./capacity.js";
import { measureFloor, type FloorResult } from "./floor.js";
import { measureWorkerCapacity, type WorkerCapacityRow } from "./workers.js";

let server: ChildProcess;
let base: string;
const results: Record<string, unknown> = {};

const cpuSeconds = (m: Map<string, number>) => (m.get("process_cpu_user_seconds_total") ?? 0) + (m.get("process_cpu_system_seconds_total") ?? 0);

/** The built server in its own process; resolves with its base URL once /healthz answers. */
async function startBenchServer(env: Record<string, string> = {}, pin = false): Promise<{ proc: ChildProcess; base: string }> {
  const port = 19000 + Math.floor(Math.random() * 500);
  // Pinned to core 0 (taskset) when the bench process is pinned to the other one.
  const [cmd, args] = pin ? ["taskset", ["-c", "0", process.execPath, "dist/main.js"]] : [process.execPath, ["dist/main.js"]];
  const proc = spawn(cmd, args, {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ICE_HOSTS: "127.0.0.1",
      ICE_ADDITIONAL_HOSTS: "127.0.0.1",
      LOG_LEVEL: "warn",
      RATE_LIMIT_RPS: "1000",
      RATE_LIMIT_BURST: "1000",
      ...env,
    },
    stdio: "inherit",
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (
      await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { proc, base: url };
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
  results.machine = { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, date: new Date().toISOString() };
  mkdirSync("bench/results", { recursive: true });
  writeFileSync("bench/results/latest.json", JSON.stringify(results, null, 2));
  console.log(JSON.stringify(results, null, 2));
  console.log(markdown(results));
});

type Row = Record<string, number | null | boolean>;

/** The tables of BENCHMARKS.md, from one run; the forwarding/floor ratio last. */
function markdown(r: Record<string, unknown>): string {
  const out: string[] = [];
  const m = r.machine as { cpus: number; model: string; node: string; date: string };
  out.push(`Machine: ${m.cpus} × ${m.model}, Node ${m.node}, ${m.date}`, "");
  const floor = r.floor as FloorResult | undefined;
  if (floor) {
    out.push("| floor (µs CPU per 1200-byte packet) | send only | AES-CM + HMAC-SHA1-80 + send | AEAD-AES-128-GCM + send |", "|---|---|---|---|");
    out.push(`| this Node | ${floor.sendOnlyUs} | ${floor.aesCmHmacSha1_80Us} | ${floor.aeadAes128GcmUs} |`, "");
  }
  const fwd = r.forwarding as Record<string, Row[] | unknown> | undefined;
  if (fwd) {
    const cols: [string, string][] = [
      ["subscribers", "N"],
      ["serverCpuPercent", "server CPU %"],
      ["packetsInPerSecond", "packets in/s"],
      ["marginalCpuUsPerForwardedPacket", "µs/forwarded packet"],
      ["eventLoopP50Ms", "loop delay p50 ms"],
      ["eventLoopP99Ms", "loop delay p99 ms"],
      ["lossPercent", "loss %"],
      ["nacksPerSecond", "NACKed/s"],
      ["retransmittedPerSecond", "resent/s"],
      ["rssPerSubscriberKiB", "RSS KiB/sub"],
      ["subscribersConnected", "connected"],
    ];
    for (const pathName of FORWARD_PATHS.map(([name]) => name)) {
      const rows = fwd[pathName] as Row[] | undefined;
      if (!rows) continue;
      const workerCols: [string, string][] = pathName.includes("workers") ? [["marginalMainCpuUsPerForwardedPacket", "of which server process µs"]] : [];
      const shown = [...cols.slice(0, 4), ...workerCols, ...cols.slice(4)];
      const [path, workers] = pathName.split("+");
      out.push(
        `Forwarding, FORWARD_PATH=${path}${workers ? " FORWARD_WORKERS=2" : ""} (${String(fwd.videoKbps)} kbit/s VP8, ${fwd.pinned ? "server and peers pinned to separate cores" : "not pinned"})`,
        "",
      );
      out.push(`| ${shown.map((c) => c[1]).join(" | ")} |`, `|${shown.map(() => "---").join("|")}|`);
      for (const row of rows) out.push(`| ${shown.map(([k]) => String(row[k] ?? "–")).join(" | ")} |`);
      out.push("");
    }
    const j = r.join as { withoutGopCache: Row; withGopCache: Row } | undefined;
    if (j) {
      out.push("| join (WHEP POST → first keyframe, 20 joins) | p50 ms | p95 ms |", "|---|---|---|");
      out.push(
        `| without GOP cache | ${j.withoutGopCache.p50} | ${j.withoutGopCache.p95} |`,
        `| with GOP_CACHE | ${j.withGopCache.p50} | ${j.withGopCache.p95} |`,
        "",
      );
    }
    const w = r.workers as { rows: WorkerCapacityRow[]; ratio: number } | undefined;
    if (w) {
      out.push(
        "| fan-out workers (40 outputs, offered 8000 packets/s) | packets sent/s | worker µs/packet | feeder CPU % | batches dropped |",
        "|---|---|---|---|---|",
      );
      for (const row of w.rows)
        out.push(`| ${row.workers} | ${row.sentPerSecond} | ${row.workerUsPerPacket} | ${row.feederCpuPercent} | ${row.droppedBatches} |`);
      out.push("", `2 workers send ${w.ratio}× the packets per second of 1`, "");
    }
    const last = (name: string) => (fwd[name] as Row[] | undefined)?.at(-1);
    if (floor && last("fast") && last("werift")) {
      const f = last("fast")!;
      const w = last("werift")!;
      const ratio = (x: Row) => Math.round(((x.marginalCpuUsPerForwardedPacket as number) / floor.floorUs) * 100) / 100;
      const withWorkers = (name: string, label: string) => {
        const x = last(name);
        return x
          ? `, ${label} with 2 workers ${ratio(x)}× (server process ${Math.round(((x.marginalMainCpuUsPerForwardedPacket as number) / floor.floorUs) * 100) / 100}×)`
          : "";
      };
      const n = last("native");
      const native = n ? `native ${ratio(n)}×, ` : "";
      out.push(
        `forwarding/floor at N = ${String(f.subscribers)}: ${native}fast ${ratio(f)}×, werift ${ratio(w)}×${withWorkers("native+2workers", "native")}${withWorkers("fast+2workers", "fast")} (floor ${floor.floorUs} µs)`,
      );
      if (n) {
        const us = (x: Row) => x.marginalCpuUsPerForwardedPacket as number;
        out.push(
          `werift/native CPU per forwarded packet at N = ${String(n.subscribers)}: ${Math.round((us(w) / us(n)) * 10) / 10}× (fast/native ${Math.round((us(f) / us(n)) * 10) / 10}×)`,
        );
      }
    }
  }
  const capacity = r.capacity as Record<string, CapacityRow[] | unknown> | undefined;
  if (capacity) {
    out.push(
      "",
      `Capacity (cheap viewers: ICE + DTLS, then SRTP counted and dropped; ${String(capacity.videoKbps)} kbit/s VP8, server pinned to one core)`,
      "",
    );
    out.push(
      "| path | N | connected | server CPU % | packets in/s | µs/forwarded packet | viewers per core | loop delay p99 ms | loss % | RSS KiB/viewer |",
      "|---|---|---|---|---|---|---|---|---|---|",
    );
    for (const [name, rows] of Object.entries(capacity)) {
      if (!Array.isArray(rows)) continue;
      for (const row of rows as CapacityRow[]) {
        out.push(
          `| ${name} | ${row.viewers} | ${row.connected} | ${row.serverCpuPercent} | ${row.packetsInPerSecond} | ${row.usPerForwardedPacket ?? "–"} | ${row.viewersPerCore ?? "–"} | ${row.eventLoopP99Ms} | ${row.lossPercent} | ${row.rssPerViewerKiB ?? "–"} |`,
        );
      }
    }
  }
  return out.join("\n");
}

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

// ---- worker capacity -----------------------------------------------------------------------------

it("workers: packets per second 1 and 2 fan-out workers send for 40 outputs when offered more than they can", async () => {
  results.workers = await measureWorkerCapacity();
});

// ---- floor -------------------------------------------------------------------------------------

it("floor: SRTP protect of a 1200-byte packet (both profiles) plus dgram.send, µs of CPU per packet", async () => {
  results.floor = await measureFloor();
});

// ---- forwarding ----------------------------------------------------------------------------------

const FORWARD_NS = [0, 1, 10, 20, 40];
/** Each forwarding table: its name and the server's environment. */
const FORWARD_PATHS: readonly (readonly [string, Record<string, string>])[] = [
  ["werift", { FORWARD_PATH: "werift" }],
  ["fast", { FORWARD_PATH: "fast" }],
  ["native", { FORWARD_PATH: "native" }],
  // The workers inherit the server's pinning: on two cores they share its core, so these rows
  // show what moving the per-viewer work out of the server process costs and frees there.
  ["fast+2workers", { FORWARD_PATH: "fast", FORWARD_WORKERS: "2" }],
  ["native+2workers", { FORWARD_PATH: "native", FORWARD_WORKERS: "2" }],
];
const VIDEO_KBPS = 2500;
const WINDOW_MS = 8000;

/** A 2.5 Mbit/s VP8 file, encoded once: the publisher replays it, so no encoder runs during the measurement. */
function encodedVp8(): string {
  const dir = path.resolve(".tmp/bench");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `vp8-${VIDEO_KBPS}k.webm`);
  if (!existsSync(file)) {
    execFileSync(
      resolveFfmpeg(),
      [
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-t",
        "20",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-auto-alt-ref",
        "0",
        "-g",
        "60",
        "-b:v",
        `${VIDEO_KBPS}k`,
        "-minrate",
        `${VIDEO_KBPS}k`,
        "-maxrate",
        `${VIDEO_KBPS}k`,
        "-bufsize",
        `${VIDEO_KBPS}k`,
        "-y",
        file,
      ],
      { stdio: "inherit" },
    );
  }
  return file;
}

/**
 * prom-client's event-loop percentiles are intervals between ticks of a 10 ms timer
 * (monitorEventLoopDelay records the whole interval): the delay is what exceeds the tick.
 */
const LOOP_TICK_MS = 10;
const loopDelayMs = (seconds: number | undefined) => Math.max(0, Math.round(((seconds ?? 0) * 1000 - LOOP_TICK_MS) * 10) / 10);

interface ForwardRow {
  subscribers: number;
  serverCpuPercent: number;
  packetsInPerSecond: number;
  marginalCpuUsPerForwardedPacket: number | null;
  eventLoopP50Ms: number;
  eventLoopP99Ms: number;
  /** Sequence gaps seen by the subscribers over the window / packets they received. */
  lossPercent: number;
  nacksPerSecond: number;
  retransmittedPerSecond: number;
  rssMiB: number;
  rssPerSubscriberKiB: number | null;
  subscribersConnected: number;
  /** FORWARD_WORKERS only: the server process's own part of the marginal µs (the rest is the workers'). */
  marginalMainCpuUsPerForwardedPacket?: number | null;
}

/** Server CPU per forwarded packet for one forwarding path, against its own server process. */
async function forwardTable(
  serverBase: string,
  metricsOf: () => Promise<Map<string, number>>,
  file: string,
  /** CPU seconds spent outside the server process (its fan-out workers), when it has any. */
  workersCpu?: () => number,
): Promise<ForwardRow[]> {
  const { client: pub } = await publishTestStream(`${serverBase}/api/whip/publish/cpu`, {
    video: { codec: "VP8" },
    audio: false,
    source: { file },
  });
  const table: ForwardRow[] = [];
  const subs: WhepClient[] = [];
  try {
    await sleep(1500);
    let baselineCpu = 0;
    let baselineMainCpu = 0;
    let baselineRss = 0;
    for (const n of FORWARD_NS) {
      while (subs.length < n) {
        try {
          subs.push((await playStream(`${serverBase}/api/whep/play/cpu`, { audio: false })).client);
        } catch {
          // Counted below as subscribers that are not connected.
        }
        if (subs.length < n && subs.length % 10 === 9) await sleep(200);
      }
      await sleep(2000);
      const before = await metricsOf(); // also resets the event-loop percentiles
      const workers0 = workersCpu?.() ?? 0;
      const gaps0 = subs.reduce((a, x) => a + x.video.sequenceGaps, 0);
      const pk0 = subs.reduce((a, x) => a + x.video.packets, 0);
      const start = Date.now();
      await sleep(WINDOW_MS);
      const after = await metricsOf();
      const workers = (workersCpu?.() ?? 0) - workers0;
      const seconds = (Date.now() - start) / 1000;
      const gaps = subs.reduce((a, x) => a + x.video.sequenceGaps, 0) - gaps0;
      const received = subs.reduce((a, x) => a + x.video.packets, 0) - pk0;
      const mainCpu = cpuSeconds(after) - cpuSeconds(before);
      const cpu = mainCpu + workers;
      const inPackets = (after.get('live_rtp_packets_total{room="cpu"}') ?? 0) - (before.get('live_rtp_packets_total{room="cpu"}') ?? 0);
      const rss = (after.get("process_resident_memory_bytes") ?? 0) / 1048576;
      const delta = (name: string) => ((after.get(name) ?? 0) - (before.get(name) ?? 0)) / seconds;
      if (n === 0) {
        baselineCpu = cpu;
        baselineMainCpu = mainCpu;
        baselineRss = rss;
      }
      table.push({
        subscribers: n,
        serverCpuPercent: Math.round((cpu / seconds) * 1000) / 10,
        packetsInPerSecond: Math.round(inPackets / seconds),
        marginalCpuUsPerForwardedPacket: n === 0 ? null : Math.round(((cpu - baselineCpu) * 1e6 * 10) / (inPackets * n)) / 10,
        eventLoopP50Ms: loopDelayMs(after.get("nodejs_eventloop_lag_p50_seconds")),
        eventLoopP99Ms: loopDelayMs(after.get("nodejs_eventloop_lag_p99_seconds")),
        lossPercent: received + gaps > 0 ? Math.round((gaps / (received + gaps)) * 10000) / 100 : 0,
        nacksPerSecond: Math.round(delta("live_nack_requested_packets_total")),
        retransmittedPerSecond: Math.round(delta("live_retransmitted_packets_total")),
        rssMiB: Math.round(rss * 10) / 10,
        rssPerSubscriberKiB: n === 0 ? null : Math.round(((rss - baselineRss) * 1024) / n),
        subscribersConnected: subs.filter((x) => x.pc.connectionState === "connected").length,
        ...(workersCpu
          ? { marginalMainCpuUsPerForwardedPacket: n === 0 ? null : Math.round(((mainCpu - baselineMainCpu) * 1e6 * 10) / (inPackets * n)) / 10 }
          : {}),
      });
    }
  } finally {
    await Promise.all(subs.map((s) => s.close()));
    await pub.close();
  }
  return table;
}

it(`forwarding: 1 publisher (VP8 ${VIDEO_KBPS} kbit/s replayed) and N = ${FORWARD_NS.slice(1).join(", ")} subscribers, werift's send path against the fast path`, async () => {
  const file = encodedVp8();
  const pinned = pinBenchProcess();
  results.forwarding = { pinned, videoKbps: VIDEO_KBPS, windowSeconds: WINDOW_MS / 1000 };
  for (const [name, env] of FORWARD_PATHS) {
    const srv = await startBenchServer(env, pinned);
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
      const workersCpu = name.includes("workers") ? () => processCpuSeconds(fanoutWorkerPids(srv.proc.pid!)) : undefined;
      (results.forwarding as Record<string, unknown>)[name] = await forwardTable(srv.base, metricsOf, file, workersCpu);
    } finally {
      srv.proc.kill("SIGTERM");
    }
  }
});

// ---- capacity ------------------------------------------------------------------------------------

/** BENCH_CAPACITY_NS="0,20" measures fewer viewers (a quick look), for every path. */
const quick = process.env.BENCH_CAPACITY_NS?.split(",").map(Number);
const CAPACITY_NS: Record<string, readonly number[]> = quick ? { native: quick, fast: quick } : { native: [0, 100, 200, 300], fast: [0, 100, 200] };

it(`capacity: viewers per core at ${VIDEO_KBPS} kbit/s with cheap viewers, N up to ${Math.max(...CAPACITY_NS.native!)}`, async () => {
  const file = encodedVp8();
  const pinned = pinBenchProcess();
  results.capacity = { pinned, videoKbps: VIDEO_KBPS };
  for (const [name, ns] of Object.entries(CAPACITY_NS)) {
    const srv = await startBenchServer({ FORWARD_PATH: name, MAX_SESSIONS: "0" }, pinned);
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
      (results.capacity as Record<string, unknown>)[name] = await capacityTable(srv.base, metricsOf, () => processCpuSeconds([srv.proc.pid!]), file, ns);
    } finally {
      srv.proc.kill("SIGTERM");
    }
  }
});

/** The bench process (subscribers, publisher FFmpeg) on the last core, the server on core 0, where there are two. */
function pinBenchProcess(): boolean {
  if (cpus().length < 2 || !existsSync("/usr/bin/taskset")) return false;
  try {
    execFileSync("taskset", ["-pc", String(cpus().length - 1), String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
