// A throwaway nginx with the RTMP module on a loopback port: its own config, pid and logs in a
// temp dir, `daemon off` so the process we spawn is the master we kill by pid. Its applications
// (`live` by default) are live and record nothing; a test may give each extra directives, such as
// the on_publish callbacks an SRS-style receiver takes.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freeTcpPort, sleep } from "./net.js";
import { nginxPath, NGINX_RTMP_MODULE } from "./requirements.js";

export interface NginxRtmp {
  port: number;
  pid: number;
  dir: string;
  /** rtmp://127.0.0.1:<port>/<app>/<key>, app `live` unless given. */
  url(key: string, app?: string): string;
  stop(): Promise<void>;
}

export interface NginxRtmpOptions {
  /**
   * Application name → directives added after `live on; record off;` (e.g. `on_publish <url>;`).
   * Default: one application, `live`, with none.
   */
  applications?: Record<string, string>;
}

const APP_NAME = /^[A-Za-z0-9_-]+$/;

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

export async function startNginxRtmp(opts: NginxRtmpOptions = {}): Promise<NginxRtmp> {
  const bin = nginxPath();
  if (!bin) throw new Error("no nginx binary");
  const applications = Object.entries(opts.applications ?? { live: "" });
  for (const [name] of applications) if (!APP_NAME.test(name)) throw new Error(`invalid nginx-rtmp application name "${name}"`);
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
      ...applications.map(([name, extra]) => `    application ${name} { live on; record off;${extra ? ` ${extra}` : ""} }`),
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
    url: (key, app = "live") => `rtmp://127.0.0.1:${port}/${app}/${key}`,
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
