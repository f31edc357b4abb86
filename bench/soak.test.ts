// Soak: werift publishers and subscribers churn against the server in a child process (join, leave
// with DELETE, vanish without DELETE) for SOAK_SECONDS (default 120). The server's RSS, V8 heap,
// open fds and sockets, child processes and event-loop delay are sampled at rest after a warm-up
// (SOAK_WARMUP_SECONDS of the same churn, default a tenth of the soak and at least 45 s: start)
// and at rest after the soak (end),
// each after a full GC (the server runs with --expose-gc and a SIGUSR2 handler preloaded by the
// soak). Fails on heap growth over SOAK_HEAP_LIMIT, growth of anonymous RSS (RSS without the
// node binary's file-backed pages, which the page cache moves) over SOAK_RSS_LIMIT (defaults 3 %
// and 5 % from 10 minutes on, 10 % for shorter soaks, where what V8 still compiles after the
// warm-up outweighs what a leak could add), any session that did not connect (join failure), and any socket, fd or child
// process left over once every session has ended. The heap compared is V8's used heap after a full
// GC without its compiled code and bytecode (they grow as functions get optimised, not with
// sessions; test/helpers/heap-probe.ts); the whole used heap is printed next to it. The last
// line, "[soak] figures", holds the numbers to compare run to run.
//
//   npm run soak                      # 120 s
//   SOAK_SECONDS=1800 npm run soak    # 30 minutes
//   SOAK_SECONDS=600 SOAK_ROOMS=4 SOAK_SUBS=4 FORWARD_WORKERS=2 npm run soak
//
// `npm test` runs it (120 s) after the suite; the server is this checkout's src/, compiled into .tmp/soak-dist.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { freeTcpPort, sleep } from "../test/helpers/net.js";
import { HeapProbe, heapProbeArgs } from "../test/helpers/heap-probe.js";
import { children as childProcesses, fanoutWorkerPids, isFanoutWorker } from "../test/helpers/procfs.js";
import { WhepClient } from "../test/helpers/whep-client.js";
import { waitConnected, WhipClient } from "../test/helpers/whip-client.js";

const num = (name: string, def: number) => {
  const v = process.env[name];
  if (v === undefined || v.trim() === "") return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: expected a number, got ${v}`);
  return n;
};

const SOAK_SECONDS = num("SOAK_SECONDS", 120);
const WARMUP_SECONDS = num("SOAK_WARMUP_SECONDS", Math.max(45, Math.round(SOAK_SECONDS / 10)));
const ROOMS = num("SOAK_ROOMS", 3);
const SUBS = num("SOAK_SUBS", 3);
/** Recording on by default: recorders and their FFmpeg merges churn too. */
const RECORD = process.env.SOAK_RECORD !== "0";
const LONG = SOAK_SECONDS >= 600;
const HEAP_LIMIT = num("SOAK_HEAP_LIMIT", LONG ? 0.03 : 0.1);
const RSS_LIMIT = num("SOAK_RSS_LIMIT", LONG ? 0.05 : 0.1);

const root = path.resolve(new URL("..", import.meta.url).pathname);
const distDir = path.join(root, ".tmp", "soak-dist");

// ---- the server process -------------------------------------------------------------------------

let server: ChildProcess | undefined;
let heap: HeapProbe | undefined;
let base = "";
let serverLog = "";
const workDir = mkdtempSync(path.join(tmpdir(), "sfu-soak-"));

function build(): void {
  rmSync(distDir, { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--outDir", distDir], {
      cwd: root,
      stdio: "pipe",
    });
  } catch (err) {
    // Type errors elsewhere in a shared checkout still emit JavaScript; only a missing entry point stops the soak.
    if (!existsSync(path.join(distDir, "main.js"))) throw err;
    console.log(`[soak] tsc reported errors, running what it emitted:\n${String((err as { stdout?: Buffer }).stdout ?? "").slice(0, 2000)}`);
  }
}

async function startServer(): Promise<void> {
  const port = await freeTcpPort();
  // SIGUSR2 runs a full GC in the server, so "at rest" measures what is retained, not garbage.
  // SIGUSR2 runs a full GC in the server; a heap probe (test/helpers/heap-probe.ts) a snapshot.
  server = spawn(process.execPath, [...heapProbeArgs(distDir), path.join(distDir, "main.js")], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ICE_HOSTS: "127.0.0.1",
      ICE_ADDITIONAL_HOSTS: "127.0.0.1",
      LOG_LEVEL: "warn",
      RATE_LIMIT_RPS: "100000",
      RATE_LIMIT_BURST: "100000",
      RECORD_ENABLED: RECORD ? "true" : "false",
      RECORD_DIR: path.join(workDir, "records"),
      HLS_DIR: path.join(workDir, "hls"),
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  heap = new HeapProbe(server);
  const keep = (d: Buffer) => {
    serverLog = (serverLog + d.toString()).slice(-20_000);
  };
  server.stdout?.on("data", keep);
  server.stderr?.on("data", keep);
  base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (
      await get("/healthz").then(
        (b) => b === "ok",
        () => false,
      )
    )
      return;
    if (server.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`server did not start:\n${serverLog}`);
}

// ---- samples ------------------------------------------------------------------------------------

interface Sample {
  rssMiB: number;
  /**
   * Anonymous RSS: what the process allocated. The rest of RSS is file-backed (the node binary's
   * pages, about 40 MiB), which comes and goes with the page cache and with the code paths run.
   */
  rssAnonMiB: number;
  heapUsedMiB: number;
  /** What V8 holds from the system for its heap (used or not): the part of anonymous RSS that is V8's. */
  heapTotalMiB: number;
  /** At rest, after a full GC: V8's used heap without its compiled code and bytecode, in bytes. */
  heapWithoutCodeBytes?: number;
  /** Memory of Buffers and other objects V8 tracks outside its heap: a Buffer leak shows here, allocator retention does not. */
  externalMiB: number;
  /** Open fds of the server and its fan-out workers. */
  fds: number;
  /** tcp: the server's own (listening, and connections from anyone but this soak process). */
  sockets: { udp: number; tcp: number; other: number; tcpFromSoak: number };
  children: string[];
  eventLoopLagMs: number | undefined;
  eventLoopLagP99Ms: number | undefined;
  rooms: number;
}

/**
 * GET on a connection of its own, closed after the answer: the soak's own requests must not show
 * up as kept-alive sockets of the server when its sockets are counted.
 */
function get(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${p}`, { agent: false, headers: { Connection: "close" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(body));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

async function metrics(): Promise<Map<string, number>> {
  const text = await get("/metrics");
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

interface NetRow {
  local: string;
  remote: string;
  inode: string;
}

/** Rows of /proc/<pid>/net/{tcp,udp}{,6}: local and remote address:port (hex) and socket inode. */
function netRows(pid: number, table: string): NetRow[] {
  try {
    return readFileSync(`/proc/${pid}/net/${table}`, "utf8")
      .trim()
      .split("\n")
      .slice(1)
      .map((r) => {
        const f = r.trim().split(/\s+/);
        return { local: f[1]!, remote: f[2]!, inode: f[9]! };
      });
  } catch {
    return [];
  }
}

/** Socket inodes among a process's open fds. */
function socketInodes(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Child processes other than fan-out workers, which count as the server (FFmpeg for merges, bridges). */
function children(pid: number): string[] {
  return childProcesses(pid)
    .filter((c) => !isFanoutWorker(c.pid))
    .map((c) => `${c.name}[${c.pid}]`);
}

async function sample(): Promise<Sample> {
  const pid = server!.pid!;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const rssAnonKb = Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const links: string[] = [];
  // Fan-out workers (FORWARD_WORKERS) are part of the server: their fds count as its own.
  for (const p of [pid, ...fanoutWorkerPids(pid)]) {
    const fdDir = `/proc/${p}/fd`;
    for (const fd of readdirSync(fdDir)) {
      try {
        links.push(readlinkSync(`${fdDir}/${fd}`));
      } catch {
        links.push("");
      }
    }
  }
  const udp = new Set([...netRows(pid, "udp"), ...netRows(pid, "udp6")].map((r) => r.inode));
  const tcpRows = [...netRows(pid, "tcp"), ...netRows(pid, "tcp6")];
  const tcp = new Map(tcpRows.map((r) => [r.inode, r]));
  // Connections this soak process keeps alive to the server (fetch pools them) are not the server's.
  const mine = new Set(socketInodes(process.pid));
  const mineLocal = new Set(tcpRows.filter((r) => mine.has(r.inode)).map((r) => r.local));
  const sockets = { udp: 0, tcp: 0, other: 0, tcpFromSoak: 0 };
  for (const l of links) {
    const m = /^socket:\[(\d+)\]$/.exec(l);
    if (!m) continue;
    const row = tcp.get(m[1]!);
    if (udp.has(m[1]!)) sockets.udp++;
    else if (row && mineLocal.has(row.remote)) sockets.tcpFromSoak++;
    else if (row) sockets.tcp++;
    else sockets.other++;
  }
  const m = await metrics();
  const lag = m.get("nodejs_eventloop_lag_seconds");
  const p99 = m.get("nodejs_eventloop_lag_p99_seconds");
  return {
    rssMiB: Math.round((rssKb / 1024) * 10) / 10,
    rssAnonMiB: Math.round((rssAnonKb / 1024) * 10) / 10,
    heapUsedMiB: Math.round(((m.get("nodejs_heap_size_used_bytes") ?? 0) / 2 ** 20) * 10) / 10,
    heapTotalMiB: Math.round(((m.get("nodejs_heap_size_total_bytes") ?? 0) / 2 ** 20) * 10) / 10,
    externalMiB: Math.round(((m.get("nodejs_external_memory_bytes") ?? 0) / 2 ** 20) * 10) / 10,
    fds: links.length,
    sockets,
    children: children(pid),
    eventLoopLagMs: lag === undefined ? undefined : Math.round(lag * 10_000) / 10,
    eventLoopLagP99Ms: p99 === undefined ? undefined : Math.round(p99 * 10_000) / 10,
    rooms: m.get("live_rooms") ?? 0,
  };
}

/**
 * The server at rest: no session, no child process, sockets settled. Samples a few times and
 * keeps the lowest memory (a GC between samples is not growth) and the last counts.
 */
async function atRest(what: string): Promise<Sample> {
  const t0 = Date.now();
  let s = await sample();
  // Sessions end at once on DELETE, within PEER_TIMEOUT_SECONDS (6 s) when vanished; merges of
  // the last recordings may run a little longer.
  while ((s.rooms > 0 || s.children.length > 0) && Date.now() - t0 < 90_000) {
    await sleep(1000);
    s = await sample();
  }
  const rooms = JSON.parse(await get("/api/rooms")) as unknown[];
  await sleep(5000);
  const samples: Sample[] = [];
  for (let i = 0; i < 5; i++) {
    server!.kill("SIGUSR2");
    await sleep(1000);
    samples.push(await sample());
  }
  const last = samples[samples.length - 1]!;
  const result: Sample = {
    ...last,
    rssMiB: Math.min(...samples.map((x) => x.rssMiB)),
    rssAnonMiB: Math.min(...samples.map((x) => x.rssAnonMiB)),
    heapUsedMiB: Math.min(...samples.map((x) => x.heapUsedMiB)),
    heapTotalMiB: Math.min(...samples.map((x) => x.heapTotalMiB)),
    externalMiB: Math.min(...samples.map((x) => x.externalMiB)),
  };
  const figures = await heap!.take();
  result.heapWithoutCodeBytes = figures.heapUsed - figures.code;
  console.log(`[soak] ${what} (at rest after ${Math.round((Date.now() - t0) / 1000)} s, ${rooms.length} room(s) listed): ${JSON.stringify(result)}`);
  return result;
}

// ---- churn --------------------------------------------------------------------------------------

interface Stats {
  publishes: number;
  /** 409: the room's previous publisher vanished and has not timed out yet. */
  publishesRoomBusy: number;
  /** Join failures: refused for another reason, or answered 201 and never connected. */
  publishFailures: number;
  plays: number;
  /** 404: between two publishers of the room. */
  playsNoPublisher: number;
  /** Join failures, as publishFailures. */
  playFailures: number;
  /** Answered 201, then the room's publisher left before the viewer connected: the room ended, not a failed join. */
  playsRoomEnded: number;
  playsWithMedia: number;
  deletes: number;
  vanishes: number;
  errors: string[];
}

const rnd = (min: number, max: number) => min + Math.random() * (max - min);

async function churn(seconds: number, stats: Stats): Promise<void> {
  const until = Date.now() + seconds * 1000;
  /** Stays no longer than the churn lasts. */
  const stay = (s: number) => sleep(Math.max(0, Math.min(s * 1000, until - Date.now())));
  const live = new Set<{ close(o?: { vanish?: boolean }): Promise<void> }>();
  const note = (what: string, err: unknown) => {
    if (stats.errors.length < 20) stats.errors.push(`${what}: ${String((err as Error)?.message ?? err).slice(0, 300)}`);
  };
  /** When each room's publisher last left, and until when the server may still end the room (a vanished one times out). */
  const roomLeft = new Map<string, { at: number; endsBy: number }>();
  const leave = async (c: { close(o?: { vanish?: boolean }): Promise<void> }, room?: string) => {
    const vanish = Math.random() < 0.3;
    if (vanish) stats.vanishes++;
    else stats.deletes++;
    // PEER_TIMEOUT_SECONDS (6 s) and a second of watchdog and scheduling.
    if (room) roomLeft.set(room, { at: Date.now(), endsBy: Date.now() + (vanish ? 8000 : 1000) });
    await c.close({ vanish });
    live.delete(c);
  };

  const subscriberLoop = async (room: string) => {
    while (Date.now() < until) {
      const sub = new WhepClient({ video: ["VP8"], audio: true, connectTimeoutMs: 10_000 });
      live.add(sub);
      stats.plays++;
      const started = Date.now();
      try {
        await sub.play(`${base}/api/whep/play/${room}`);
        await stay(rnd(3, 15));
        if (sub.video.packets > 0) stats.playsWithMedia++;
      } catch (err) {
        // 404 between two publishers of the room is expected; anything else is noted.
        const left = roomLeft.get(room);
        if (/answered 404/.test(String((err as Error).message))) stats.playsNoPublisher++;
        else if (left && left.at <= Date.now() && left.endsBy >= started) stats.playsRoomEnded++;
        else {
          stats.playFailures++;
          note(`play ${room} at ${new Date().toISOString()}`, err);
        }
        await sleep(rnd(0.5, 2) * 1000);
      }
      await leave(sub);
    }
  };

  const publisherLoop = async (room: string) => {
    while (Date.now() < until) {
      const pub = await WhipClient.create({ video: { codec: "VP8" }, audio: true, connectTimeoutMs: 10_000 });
      live.add(pub);
      stats.publishes++;
      let published = false;
      try {
        pub.startSource({ width: 320, height: 240, fps: 15, bitrateKbps: 300, gop: 15 });
        await pub.publish(`${base}/api/whip/publish/${room}`, { waitConnected: false });
        // From the 201 on this publisher holds the room: its leaving ends it.
        published = true;
        await waitConnected(pub.pc, 10_000);
        await stay(rnd(10, 30));
      } catch (err) {
        // 409 while the room's previous (vanished) publisher is not yet timed out is expected.
        if (/answered 409/.test(String((err as Error).message))) stats.publishesRoomBusy++;
        else {
          stats.publishFailures++;
          note(`publish ${room} at ${new Date().toISOString()}`, err);
        }
        await sleep(2000);
      }
      await leave(pub, published ? room : undefined);
      await sleep(rnd(0.5, 3) * 1000);
    }
  };

  const loops: Promise<void>[] = [];
  for (let r = 0; r < ROOMS; r++) {
    const room = `soak${r}`;
    loops.push(publisherLoop(room));
    for (let s = 0; s < SUBS; s++) loops.push(sleep(rnd(1, 4) * 1000).then(() => subscriberLoop(room)));
  }
  await Promise.all(loops);
  await Promise.all([...live].map((c) => c.close()));
}

// ---- the run ------------------------------------------------------------------------------------

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 3000));
    if (server.exitCode === null) server.kill("SIGKILL");
  }
  rmSync(workDir, { recursive: true, force: true });
});

it(
  `soak: ${ROOMS} room(s), ${SUBS} subscriber loop(s) each, ${SOAK_SECONDS} s`,
  async () => {
    build();
    await startServer();
    const fresh = await atRest("fresh");
    const warm: Stats = {
      publishes: 0,
      publishesRoomBusy: 0,
      publishFailures: 0,
      plays: 0,
      playsNoPublisher: 0,
      playFailures: 0,
      playsRoomEnded: 0,
      playsWithMedia: 0,
      deletes: 0,
      vanishes: 0,
      errors: [],
    };
    await churn(WARMUP_SECONDS, warm);
    const start = await atRest("start (after warm-up)");

    const stats: Stats = {
      publishes: 0,
      publishesRoomBusy: 0,
      publishFailures: 0,
      plays: 0,
      playsNoPublisher: 0,
      playFailures: 0,
      playsRoomEnded: 0,
      playsWithMedia: 0,
      deletes: 0,
      vanishes: 0,
      errors: [],
    };
    const during: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sleep(10_000);
        if (!sampling) break;
        const s = await sample().catch(() => undefined);
        if (s) {
          during.push(s);
          console.log(
            `[soak] +${during.length * 10} s: rss ${s.rssMiB} MiB (anon ${s.rssAnonMiB}), heap ${s.heapUsedMiB} MiB, external ${s.externalMiB} MiB, fds ${s.fds}, udp ${s.sockets.udp}, tcp ${s.sockets.tcp}, children ${s.children.length}, rooms ${s.rooms}, lag p99 ${s.eventLoopLagP99Ms} ms`,
          );
        }
      }
    })();
    const t0 = Date.now();
    await churn(SOAK_SECONDS, stats);
    sampling = false;
    await sampler;
    const churnSeconds = Math.round((Date.now() - t0) / 1000);
    const end = await atRest("end");
    expect(server!.exitCode, `server exited:\n${serverLog}`).toBeNull();

    const growth = (a: number, b: number) => (a === 0 ? 0 : (b - a) / a);
    const row = (name: string, f: (s: Sample) => unknown) => ({
      name,
      fresh: f(fresh),
      start: f(start),
      end: f(end),
      maxDuring: during.length ? Math.max(...during.map((s) => Number(f(s)) || 0)) : undefined,
    });
    const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 100) / 100;
    const heapBytes = (x: Sample) => x.heapWithoutCodeBytes ?? 0;
    const table = [
      row("RSS (MiB)", (s) => s.rssMiB),
      row("RSS anonymous (MiB)", (s) => s.rssAnonMiB),
      row("V8 heap used (MiB)", (s) => s.heapUsedMiB),
      row("V8 heap total (MiB)", (s) => s.heapTotalMiB),
      row("V8 heap used without code (MiB)", (s) => (s.heapWithoutCodeBytes === undefined ? undefined : mib(s.heapWithoutCodeBytes))),
      row("open fds", (s) => s.fds),
      row("UDP sockets", (s) => s.sockets.udp),
      row("TCP sockets", (s) => s.sockets.tcp),
      row("TCP kept alive by the soak's fetch", (s) => s.sockets.tcpFromSoak),
      row("other sockets", (s) => s.sockets.other),
      row("child processes", (s) => s.children.length),
      row("event-loop lag (ms)", (s) => s.eventLoopLagMs),
      row("event-loop lag p99 (ms)", (s) => s.eventLoopLagP99Ms),
      row("rooms", (s) => s.rooms),
    ];
    console.table(table);
    const percent = (g: number) => Math.round(g * 1000) / 10;
    /** Sessions the server made (refusals with 404 and 409 made none). */
    const ended = stats.publishes - stats.publishesRoomBusy + stats.plays - stats.playsNoPublisher;
    const joinFailures = (x: Stats) => x.publishFailures + x.playFailures;
    // The soak's own kept-alive HTTP connections come and go with its fetch pool: not counted.
    const fds = (x: Sample) => x.fds - x.sockets.tcpFromSoak;
    const figures = {
      seconds: churnSeconds,
      warmupSeconds: WARMUP_SECONDS,
      forwardWorkers: Number(process.env.FORWARD_WORKERS ?? 0),
      limits: { heapPercent: percent(HEAP_LIMIT), rssAnonPercent: percent(RSS_LIMIT) },
      sessionsEnded: ended,
      heapGrowthPercent: percent(growth(heapBytes(start), heapBytes(end))),
      v8HeapUsedGrowthPercent: percent(growth(start.heapUsedMiB, end.heapUsedMiB)),
      rssGrowthPercent: percent(growth(start.rssMiB, end.rssMiB)),
      rssAnonGrowthPercent: percent(growth(start.rssAnonMiB, end.rssAnonMiB)),
      retainedBytesPerSession: ended === 0 ? 0 : Math.round((heapBytes(end) - heapBytes(start)) / ended),
      joinFailures: joinFailures(warm) + joinFailures(stats),
      /** Viewers whose room's publisher left while they connected: not join failures. */
      playsRoomEnded: warm.playsRoomEnded + stats.playsRoomEnded,
      leftFds: fds(end) - fds(start),
      leftSockets: (["udp", "tcp", "other"] as const).reduce((n, k) => n + end.sockets[k] - start.sockets[k], 0),
      leftChildren: end.children.length,
    };
    const summary = {
      seconds: churnSeconds,
      rooms: ROOMS,
      subscriberLoops: SUBS,
      record: RECORD,
      warmup: { seconds: WARMUP_SECONDS, ...warm },
      soak: stats,
      figures,
      table,
      endChildren: end.children,
    };
    console.log(`[soak] ${JSON.stringify(summary, null, 2)}`);
    mkdirSync(path.join(root, "bench/results"), { recursive: true });
    writeFileSync(path.join(root, "bench/results/soak.json"), JSON.stringify(summary, null, 2));

    console.log(`[soak] figures ${JSON.stringify(figures)}`);

    const problems: string[] = [];
    if (growth(start.rssAnonMiB, end.rssAnonMiB) > RSS_LIMIT) {
      problems.push(
        `anonymous RSS grew ${start.rssAnonMiB} -> ${end.rssAnonMiB} MiB (limit ${percent(RSS_LIMIT)} %; all RSS ${start.rssMiB} -> ${end.rssMiB} MiB)`,
      );
    }
    if (growth(heapBytes(start), heapBytes(end)) > HEAP_LIMIT) {
      problems.push(`heap without code grew ${mib(heapBytes(start))} -> ${mib(heapBytes(end))} MiB (limit ${percent(HEAP_LIMIT)} %)`);
    }
    if (figures.joinFailures > 0)
      problems.push(`${figures.joinFailures} session(s) did not connect or were refused: ${[...warm.errors, ...stats.errors].join("; ")}`);
    if (fds(end) > fds(start)) problems.push(`open fds ${fds(start)} -> ${fds(end)} (without the soak's own connections)`);
    for (const k of ["udp", "tcp", "other"] as const)
      if (end.sockets[k] > start.sockets[k]) problems.push(`${k} sockets ${start.sockets[k]} -> ${end.sockets[k]}`);
    if (end.children.length > 0) problems.push(`child processes left: ${end.children.join(", ")}`);
    if (end.rooms > 0) problems.push(`${end.rooms} room(s) still live`);
    if (stats.plays > 0 && stats.playsWithMedia === 0) problems.push("no subscriber received media");
    expect(problems, `soak problems (server log tail:\n${serverLog.slice(-3000)})`).toEqual([]);
  },
  (SOAK_SECONDS + WARMUP_SECONDS + 400) * 1000,
);
