// A real redis-server and real server processes on loopback for the cluster suites: each test
// starts its own on free ports and stops them (SIGKILL is what the kill tests need anyway).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freeTcpPort, sleep } from "../helpers/net.js";
import { redisServerPath } from "../helpers/requirements.js";
import { buildServer } from "../helpers/server-process.js";

export interface Proc {
  child: ChildProcess;
  /** SIGKILL unless it already exited; resolves once it has. */
  kill(): Promise<void>;
  output(): string;
}

function track(child: ChildProcess): Proc {
  let out = "";
  child.stdout?.on("data", (d) => (out += String(d)));
  child.stderr?.on("data", (d) => (out += String(d)));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  return {
    child,
    output: () => out,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

export interface RedisProc extends Proc {
  port: number;
  url: string;
}

/** redis-server on a port (a free one unless given), nothing persisted: a restart starts empty. */
export async function startRedis(port?: number): Promise<RedisProc> {
  const p = port ?? (await freeTcpPort());
  const dir = mkdtempSync(path.join(tmpdir(), "whipsfu-redis-"));
  const child = spawn(redisServerPath()!, ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = track(child);
  for (let i = 0; i < 100; i++) {
    if (proc.output().includes("Ready to accept connections")) return { ...proc, port: p, url: `redis://127.0.0.1:${p}` };
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  await proc.kill();
  throw new Error(`redis-server did not start: ${proc.output()}`);
}

export interface NodeProc extends Proc {
  id: string;
  base: string;
  port: number;
  recordDir: string;
  whip(room: string): string;
  whep(room: string): string;
}

/** The built server as a cluster node on a free loopback port, ICE on loopback; resolves once /healthz answers. */
export async function startNode(id: string, redisUrl: string, env: Record<string, string> = {}): Promise<NodeProc> {
  const port = await freeTcpPort();
  const base = `http://127.0.0.1:${port}`;
  const recordDir = mkdtempSync(path.join(tmpdir(), `whipsfu-${id}-`));
  const child = spawn(process.execPath, [buildServer()], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ICE_HOSTS: "127.0.0.1",
      ICE_ADDITIONAL_HOSTS: "127.0.0.1",
      LOG_LEVEL: "warn",
      RATE_LIMIT_RPS: "1000",
      RATE_LIMIT_BURST: "1000",
      REDIS_URL: redisUrl,
      CLUSTER_ADVERTISE_URL: base,
      CLUSTER_SECRET: "cluster-secret-for-tests",
      CLUSTER_NODE_ID: id,
      RECORD_DIR: recordDir,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = track(child);
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`node ${id} exited with ${child.exitCode}: ${proc.output()}`);
    if (
      await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    ) {
      return {
        ...proc,
        id,
        base,
        port,
        recordDir,
        whip: (room) => `${base}/api/whip/publish/${room}`,
        whep: (room) => `${base}/api/whep/play/${room}`,
      };
    }
    await sleep(100);
  }
  await proc.kill();
  throw new Error(`node ${id} did not answer /healthz: ${proc.output()}`);
}
