// The server as `npm start` runs it, in a process of its own: for what only a real process shows
// (signals, its stdout log lines, what is left after SIGKILL).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { sleep } from "./net.js";

let built: string | undefined;

/**
 * Compiles the server once per test file, into this checkout's ignored .tmp/ (never `dist/`, and
 * never node_modules, which several checkouts may share).
 */
export function buildServer(): string {
  if (built) return built;
  const outDir = path.resolve(".tmp/test-build");
  execFileSync(process.execPath, [path.resolve("node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--outDir", outDir], { stdio: "inherit" });
  built = path.join(outDir, "main.js");
  return built;
}

export interface ServerProcess {
  child: ChildProcess;
  base: string;
  /** Everything the process wrote to stdout (its pino log) so far. */
  stdout(): string;
  stderr(): string;
  /** SIGKILL unless it already exited; resolves once it has. */
  kill(): Promise<void>;
}

/** Starts the built server on a random loopback port with ICE on loopback; resolves once /healthz answers. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const port = 18000 + Math.floor(Math.random() * 2000);
  const child = spawn(process.execPath, [buildServer()], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ICE_HOSTS: "127.0.0.1",
      ICE_ADDITIONAL_HOSTS: "127.0.0.1",
      LOG_LEVEL: "warn",
      ROOM_GRACE_SECONDS: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => (out += String(d)));
  child.stderr?.on("data", (d) => (err += String(d)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const proc: ServerProcess = {
    child,
    base: `http://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${err}`);
    if (
      await fetch(`${proc.base}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return proc;
    await sleep(100);
  }
  await proc.kill();
  throw new Error(`server did not answer /healthz: ${err}`);
}
