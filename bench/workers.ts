// Capacity of the fan-out workers (FORWARD_WORKERS) on this machine: how many packets per second
// 1 and 2 worker processes protect and send when offered more than they can, with the server's
// own queueing code (dist/sfu/fanout-workers.js) feeding them and 40 viewers' outputs spread over
// them. Synthetic on purpose: no werift peers, whose receiving would take the cores the workers
// need; the packets go to a UDP socket of a stopped process, so the kernel drops them once its
// buffer is full and nothing else spends CPU on them.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type * as WorkersModule from "../src/sfu/fanout-workers.js";
import type * as HistoryModule from "../src/sfu/history.js";
import type { ViewerOutput } from "../src/sfu/outbound.js";
import { cpuSeconds } from "../test/helpers/procfs.js";

export interface WorkerCapacityRow {
  workers: number;
  /** Each worker pinned to a core of its own (taskset), where the machine has enough. */
  pinned: boolean;
  outputs: number;
  /** Packets per second the workers sent, all outputs together. */
  sentPerSecond: number;
  /** Worker CPU µs per sent packet (all workers' CPU over all they sent). */
  workerUsPerPacket: number;
  /** The feeding process's CPU over the window, % of one core. */
  feederCpuPercent: number;
  droppedBatches: number;
}

const OUTPUTS = 40;
const OFFERED_PACKETS_PER_MS = 8;
const WINDOW_MS = 5000;

function pinEach(pids: number[]): boolean {
  if (cpus().length < pids.length || !existsSync("/usr/bin/taskset")) return false;
  try {
    pids.forEach((pid, core) => {
      execFileSync("taskset", ["-a", "-pc", String(core), String(pid)], { stdio: "ignore" });
    });
    return true;
  } catch {
    return false;
  }
}

async function stoppedSink(): Promise<{ port: number; kill: () => void }> {
  const child = spawn(process.execPath, ["-e", "const s=require('dgram').createSocket('udp4');s.bind(0,'127.0.0.1',()=>console.log(s.address().port));"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (d) => resolve(Number(String(d).trim())));
    child.once("exit", () => reject(new Error("sink exited")));
  });
  child.kill("SIGSTOP");
  return { port, kill: () => child.kill("SIGKILL") };
}

async function measure(count: number, sinkPort: number): Promise<WorkerCapacityRow> {
  const dist = path.resolve("dist/sfu");
  const { FanoutWorkers, workerStats } = (await import(pathToFileURL(path.join(dist, "fanout-workers.js")).href)) as typeof WorkersModule;
  const { PacketHistory } = (await import(pathToFileURL(path.join(dist, "history.js")).href)) as typeof HistoryModule;
  const log = { info: () => undefined, warn: () => undefined, error: (o: object, m: string) => console.error(m, o) };
  const workers = new FanoutWorkers(count, log);
  await workers.whenStarted();
  const history = new PacketHistory("video");
  const sockets: dgram.Socket[] = [];
  const outputs: ViewerOutput[] = [];
  try {
    for (let i = 0; i < OUTPUTS; i++) {
      const socket = dgram.createSocket("udp4");
      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
      sockets.push(socket);
      const path = { address: "127.0.0.1", port: sinkPort, socket };
      const output = workers.attach({
        identity: { payloadType: 96, ssrc: randomBytes(4).readUInt32BE(0) },
        keys: { profile: 0x0007, srtpSessionKey: randomBytes(16), srtpSessionSalt: randomBytes(12) },
        history,
        extensionIds: new Uint8Array(5),
        path: () => path,
        onLost: () => undefined,
      });
      if (!output) throw new Error("a worker did not take the output");
      outputs.push(output);
    }
    let seq = 0;
    // Distinct payload objects in rotation: the queue tells packets apart by identity, as the
    // fan-out's packets are; random bytes made once keep the feeder's own cost down.
    const payloads = Array.from({ length: 64 }, () => randomBytes(1200));
    const feed = (): void => {
      for (let p = 0; p < OFFERED_PACKETS_PER_MS; p++) {
        const payload = payloads[seq & 63]!;
        seq = (seq + 1) & 0xffff;
        history.putStored(seq, seq * 3000, false, payload, null);
        for (const output of outputs) output.write(seq, seq * 3000, false, payload);
      }
    };
    const pids = (await workers.counters()).map((c) => c.pid);
    // One core per worker, as one would deploy them, so 1 and 2 workers compare as 1 and 2 cores
    // (unpinned, the scheduler moves them around the feeder and the two-worker figure varies more).
    const pinned = pinEach(pids);
    const timer = setInterval(feed, 1);
    await new Promise((r) => setTimeout(r, 1000));
    const sent0 = (await workers.counters()).reduce((a, c) => a + c.sent, 0);
    const cpu0 = cpuSeconds(pids);
    const feeder0 = process.cpuUsage();
    const dropped0 = workerStats.droppedBatches;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const seconds = (performance.now() - t0) / 1000;
    const feeder = process.cpuUsage(feeder0);
    const sent = (await workers.counters()).reduce((a, c) => a + c.sent, 0) - sent0;
    const cpu = cpuSeconds(pids) - cpu0;
    clearInterval(timer);
    return {
      workers: count,
      pinned,
      outputs: OUTPUTS,
      sentPerSecond: Math.round(sent / seconds),
      workerUsPerPacket: Math.round(((cpu * 1e6) / sent) * 10) / 10,
      feederCpuPercent: Math.round(((feeder.user + feeder.system) / 1e6 / seconds) * 1000) / 10,
      droppedBatches: workerStats.droppedBatches - dropped0,
    };
  } finally {
    for (const o of outputs) o.close();
    history.close();
    await workers.close();
    for (const s of sockets) s.close();
  }
}

/** 1 worker, then 2, offered more than either can send. */
export async function measureWorkerCapacity(): Promise<{ rows: WorkerCapacityRow[]; ratio: number }> {
  const sink = await stoppedSink();
  try {
    const rows = [await measure(1, sink.port), await measure(2, sink.port)];
    return { rows, ratio: Math.round((rows[1]!.sentPerSecond / rows[0]!.sentPerSecond) * 100) / 100 };
  } finally {
    sink.kill();
  }
}
