// What /proc says about the server's processes, for tests and benches that run it as its own
// process: its children, which of them are fan-out workers (FORWARD_WORKERS), their CPU time.
import { readdirSync, readFileSync } from "node:fs";

interface ProcStat {
  pid: number;
  name: string;
  state: string;
  ppid: number;
  /** user + system CPU, seconds (clock ticks of 1/100 s). */
  cpuSeconds: number;
}

/** /proc/<pid>/stat, or undefined once the process is gone. */
function stat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = text.lastIndexOf(")");
    const f = text.slice(close + 2).split(" ");
    return { pid, name: text.slice(text.indexOf("(") + 1, close), state: f[0]!, ppid: Number(f[1]), cpuSeconds: (Number(f[11]) + Number(f[12])) / 100 };
  } catch {
    return undefined;
  }
}

/** Live (not zombie) children of a process. */
export function children(pid: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s && s.ppid === pid && s.state !== "Z") out.push(s);
  }
  return out;
}

/** The process exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && s.state !== "Z";
}

export function isFanoutWorker(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("fanout-worker.js");
  } catch {
    return false;
  }
}

/** The server's fan-out worker processes, by pid, ascending. */
export function fanoutWorkerPids(serverPid: number): number[] {
  return children(serverPid)
    .map((c) => c.pid)
    .filter(isFanoutWorker)
    .sort((a, b) => a - b);
}

/** CPU seconds these processes have used (0 for those gone). */
export function cpuSeconds(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (stat(pid)?.cpuSeconds ?? 0), 0);
}

/**
 * Every pid `source` reports while it runs (polled every `everyMs`), so a test can check after a
 * close that none of them outlived it: processes that came and went between two looks included.
 */
export class PidWatch {
  readonly seen = new Set<number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly source: () => readonly number[],
    everyMs = 50,
  ) {
    this.timer = setInterval(() => this.look(), everyMs);
  }

  /** Takes the current pids now, besides the polling; returns them. */
  look(): readonly number[] {
    const pids = this.source();
    for (const p of pids) this.seen.add(p);
    return pids;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
