// A throwaway nginx with the RTMP module on a loopback port: its own config, pid and logs in a
// temp dir, `daemon off` so the process we spawn is the master we kill by pid.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freeTcpPort, sleep } from "../helpers/net.js";
import { nginxPath, NGINX_RTMP_MODULE } from "../helpers/requirements.js";

export interface NginxRtmp {
  port: number;
  pid: number;
  dir: string;
  /** rtmp://127.0.0.1:<port>/live/<key> */
  url(key: string): string;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function startNginxRtmp(): Promise<NginxRtmp> {
  const bin = nginxPath();
  if (!bin) throw new Error("no nginx binary");
  const dir = mkdtempSync(path.join(tmpdir(), "nginx-rtmp-"));
  const port = await freeTcpPort();
  const conf = path.join(dir, "nginx.conf");
  writeFileSync(
    conf,
    [
      `load_module ${NGINX_RTMP_MODULE};`,
      "daemon off;",
      "master_process on;",
      "worker_processes 1;",
      `error_log ${path.join(dir, "error.log")} warn;`,
      `pid ${path.join(dir, "nginx.pid")};`,
      "events { worker_connections 256; }",
      "rtmp {",
      "  server {",
      `    listen 127.0.0.1:${port};`,
      "    chunk_size 4096;",
      "    application live { live on; record off; }",
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(bin, ["-c", conf, "-p", dir], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${bin}`);
  for (let i = 0; i < 100 && !(await canConnect(port)); i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  if (!(await canConnect(port))) {
    child.kill("SIGKILL");
    let log = "";
    try {
      log = readFileSync(path.join(dir, "error.log"), "utf8");
    } catch {
      // none
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`nginx-rtmp did not listen on ${port}: ${stderr}${log}`);
  }
  let stopping: Promise<void> | undefined;
  return {
    port,
    pid,
    dir,
    url: (key) => `rtmp://127.0.0.1:${port}/live/${key}`,
    stop: () =>
      (stopping ??= (async () => {
        // The master ends its worker on SIGTERM ("fast shutdown"); SIGKILL if it dawdles.
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
}
