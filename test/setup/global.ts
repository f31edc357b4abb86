// vitest globalSetup: make the Debian tools the suites use available when this process can.
// Chromium (browser suites), nginx + the RTMP module (RTMP suites) and FFmpeg (media suites; the
// npm static build is a fallback) and promtool (deploy/prometheus rules, from the prometheus
// package) come from apt-get when missing and we are root. When they cannot
// be had, the suites that need them skip with the reason in their title, or fail with CI=true
// (test/helpers/requirements.ts).
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { clearFfmpegPathCache } from "../../src/bridges/ffmpeg-path.js";
import { checkRequirement, INSTALL_NOTE_ENV, type Requirement, type RequirementStatus } from "../helpers/requirements.js";

const PACKAGES = ["chromium", "nginx", "libnginx-mod-rtmp", "ffmpeg", "prometheus", "redis-server"];
const CHECKED: Requirement[] = ["chromium", "nginx-rtmp", "ffmpeg", "ffprobe", "promtool", "redis-server"];
const POLICY_RC_D = "/usr/sbin/policy-rc.d";

function log(msg: string): void {
  console.log(`[global-setup] ${msg}`);
}

function which(cmd: string): string | undefined {
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin", ...(process.env.PATH ?? "").split(path.delimiter)]) {
    const p = path.join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/** Runs a command with its output appended to `logFile`; resolves with the exit code. */
function run(cmd: string, args: string[], logFile: string, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const out = createWriteStream(logFile, { flags: "a" });
    out.write(`\n$ ${cmd} ${args.join(" ")}\n`);
    const child = spawn(cmd, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const finish = (code: number | null): void => {
      clearTimeout(timer);
      out.end(() => resolve(code));
    };
    child.once("error", (err) => {
      out.write(`spawn failed: ${err.message}\n`);
      finish(null);
    });
    child.once("close", (code) => finish(code));
  });
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

function recheck(): RequirementStatus[] {
  clearFfmpegPathCache();
  return CHECKED.map((n) => checkRequirement(n, true));
}

/** Why apt-get cannot be used here, or undefined when it can. */
function cannotInstall(): string | undefined {
  if (process.env.SKIP_APT_INSTALL === "1") return "SKIP_APT_INSTALL=1";
  if (process.platform !== "linux") return `platform is ${process.platform}`;
  if (process.getuid?.() !== 0) return "not running as root";
  if (!which("apt-get")) return "no apt-get on this machine";
  return undefined;
}

async function install(missing: RequirementStatus[]): Promise<string | undefined> {
  const reason = cannotInstall();
  if (reason) return `not installing ${PACKAGES.join(" ")}: ${reason}`;
  const logFile = path.join(tmpdir(), `whipsfu-apt-${process.pid}.log`);
  log(`missing: ${missing.map((m) => m.name).join(", ")}; installing ${PACKAGES.join(" ")} with apt-get (log: ${logFile}; this can take minutes)`);
  // Installing nginx, prometheus or redis-server must not start them (suites start their own nginx
  // and redis-server; promtool is all we want of prometheus): tell invoke-rc.d to start nothing.
  let ownPolicy = false;
  if (!existsSync(POLICY_RC_D)) {
    try {
      writeFileSync(POLICY_RC_D, "#!/bin/sh\n# written by test/setup/global.ts for the duration of apt-get install\nexit 101\n", { mode: 0o755 });
      ownPolicy = true;
    } catch (err) {
      log(`could not write ${POLICY_RC_D} (${(err as Error).message}); nginx may start after install`);
    }
  }
  try {
    const t0 = Date.now();
    log("apt-get update");
    const upd = await run("apt-get", ["update"], logFile, 10 * 60_000);
    if (upd !== 0) return `apt-get update exited with ${upd}:\n${tail(logFile)}`;
    log(`apt-get install -y --no-install-recommends ${PACKAGES.join(" ")}`);
    const inst = await run("apt-get", ["install", "-y", "--no-install-recommends", ...PACKAGES], logFile, 20 * 60_000);
    if (inst !== 0) return `apt-get install exited with ${inst}:\n${tail(logFile)}`;
    log(`apt-get finished in ${Math.round((Date.now() - t0) / 1000)} s`);
    return undefined;
  } finally {
    if (ownPolicy) rmSync(POLICY_RC_D, { force: true });
  }
}

export default async function setup(): Promise<void> {
  let statuses = recheck();
  let missing = statuses.filter((s) => !s.ok && !s.off);
  if (missing.length > 0) {
    const failure = await install(missing);
    statuses = recheck();
    missing = statuses.filter((s) => !s.ok && !s.off);
    if (missing.length > 0) {
      const note = failure ?? "apt-get succeeded but the tools are still missing";
      // Forked test workers inherit this, so skip reasons and CI failures can say what happened.
      process.env[INSTALL_NOTE_ENV] = note.split("\n")[0]!;
      log(note);
    }
  }
  for (const s of statuses) log(`${s.ok ? "have" : s.off ? "OFF" : "MISSING"} ${s.name}: ${s.detail}`);
}
