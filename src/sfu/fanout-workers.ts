// Fan-out across processes (FORWARD_WORKERS = N > 0): the server keeps one copy of each packet
// per worker per event-loop turn; the per-viewer work (extension rewrite, SRTP protect, send) runs
// in N child processes, each viewer's outputs in one of them. Node runs JavaScript on one core per
// process and a UDP socket cannot move between threads, but a descriptor can be passed to another
// process, which then sends from the viewer's own address and port.
import type { Logger } from "../logger.js";
import { fork, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isNack, type Batch, type FromWorker, type NackItem, type PacketItem, type ToWorker } from "./fanout-protocol.js";
import type dgram from "node:dgram";
import type { RemoteOutputRequest, RemoteOutputs } from "./fast-sender.js";
import type { PacketHistory } from "./history.js";
import type { ViewerOutput } from "./outbound.js";
import type { SendPath } from "./werift-adapter.js";

const WORKER_SCRIPT = fileURLToPath(new URL("./fanout-worker.js", import.meta.url));
/** A worker that dies within this long of its start is restarted only after this long, not in a loop. */
const RESTART_DELAY_MS = 1000;
/**
 * Batches written to a worker's channel and not yet taken by it. A worker that falls this far
 * behind (starved of CPU) gets no more until it catches up: late media is dropped, as a congested
 * link would, rather than queued without bound in the server's memory; viewers NACK or ask for a
 * keyframe.
 */
const MAX_BATCHES_IN_FLIGHT = 64;

/** Process-wide counters for /metrics (plain numbers, no labels). */
export const workerStats = { droppedBatches: 0, restarts: 0 };

class Worker {
  child: ChildProcess;
  readonly outputs = new Map<number, RemoteOutput>();
  private items: (PacketItem | NackItem)[] = [];
  /** The packet the last queued item is for: the next viewer of the same packet joins that item. */
  private current: object | undefined;
  private currentItem: PacketItem | undefined;
  private scheduled = false;
  private startedAt = 0;
  /** Set when the worker has said it can take viewers; viewers attached before go out from the server. */
  ready = false;
  /** Resolves when the worker has said whether it can take viewers (or has exited). */
  started: Promise<void> = Promise.resolve();
  private markStarted = (): void => undefined;
  private inFlight = 0;
  private dropping = false;
  exited: Promise<void> = Promise.resolve();
  private readonly counterWaiters: ((c: { sent: number; outputs: number }) => void)[] = [];
  private readonly sent = (): void => {
    this.inFlight--;
  };

  constructor(
    readonly index: number,
    private readonly log: Logger,
    private readonly isClosing: () => boolean,
  ) {
    this.child = this.spawn();
  }

  private spawn(): ChildProcess {
    this.startedAt = performance.now();
    this.inFlight = 0;
    this.ready = false;
    this.started = new Promise((resolve) => (this.markStarted = resolve));
    const child = fork(WORKER_SCRIPT, [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    child.on("message", (m: FromWorker) => {
      if (m.type === "counters") {
        this.counterWaiters.shift()?.({ sent: m.sent, outputs: m.outputs });
        return;
      }
      if (m.type === "ready") {
        this.ready = m.ok;
        this.markStarted();
        if (m.ok) this.log.info({ worker: this.index, pid: child.pid }, "fan-out worker ready");
        else this.log.error({ worker: this.index, err: m.message }, "fan-out worker cannot use viewers' sockets in this Node; sending from the server process");
        return;
      }
      this.log.warn({ worker: this.index, output: m.id, err: m.message }, "fan-out worker could not send for a viewer");
      this.lose(m.id);
    });
    child.on("error", (err) => this.log.error({ worker: this.index, err: err.message }, "fan-out worker error"));
    child.once("exit", (code, signal) => {
      for (const waiter of this.counterWaiters.splice(0)) waiter({ sent: 0, outputs: 0 });
      this.ready = false;
      this.markStarted();
      if (this.isClosing()) return;
      this.log.error({ worker: this.index, pid: child.pid, code, signal, viewers: this.outputs.size }, "fan-out worker exited; its viewers are ended");
      for (const id of [...this.outputs.keys()]) this.lose(id);
      const delay = performance.now() - this.startedAt < RESTART_DELAY_MS ? RESTART_DELAY_MS : 0;
      setTimeout(() => {
        if (this.isClosing()) return;
        workerStats.restarts++;
        this.child = this.spawn();
      }, delay).unref();
    });
    return child;
  }

  /** The worker's own counters (it answers in order); zeros when it is not running. */
  counters(): Promise<{ sent: number; outputs: number }> {
    if (!this.child.connected) return Promise.resolve({ sent: 0, outputs: 0 });
    return new Promise((resolve) => {
      this.counterWaiters.push(resolve);
      this.post({ type: "counters" });
    });
  }

  private lose(id: number): void {
    const output = this.outputs.get(id);
    if (!output) return;
    this.outputs.delete(id);
    output.lost();
  }

  post(message: ToWorker, handle?: dgram.Socket): void {
    if (!this.child.connected) return;
    // Queued packets go first: the worker must see them in the order the server queued them.
    if (this.items.length > 0) this.flush();
    try {
      this.child.send(message, handle);
    } catch {
      // The channel closed under us: the exit handler ends the viewers.
    }
  }

  /**
   * Queues one packet for one of this worker's outputs; a packet's later viewers join its item.
   * The fan-out hands every viewer the same payload object, so it tells one packet from the next.
   */
  queuePacket(track: number, history: PacketHistory, seq: number, ts: number, marker: boolean, payload: Uint8Array, id: number): void {
    if (payload === this.current && this.currentItem) {
      this.currentItem.to.push(id);
      return;
    }
    // The payload is copied: the fan-out's packet must not be kept past the write.
    const item: PacketItem = {
      track,
      sequenceNumber: seq,
      timestamp: ts,
      marker,
      payload: Buffer.from(payload),
      extensions: history.copyStoredExtensions(seq),
      to: [id],
    };
    this.current = payload;
    this.currentItem = item;
    this.push(item);
  }

  queueNack(id: number, seq: number): void {
    const last = this.items[this.items.length - 1];
    if (last && isNack(last) && last.id === id) last.sequenceNumbers.push(seq);
    else this.push({ id, sequenceNumbers: [seq] });
  }

  private push(item: PacketItem | NackItem): void {
    this.items.push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    // One message per turn of the event loop: packets read from the publisher's socket in one
    // poll go out together, with no timer added to their latency.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    this.current = undefined;
    this.currentItem = undefined;
    if (this.items.length === 0) return;
    const batch: Batch = { type: "batch", items: this.items };
    this.items = [];
    if (!this.child.connected) return;
    if (this.inFlight >= MAX_BATCHES_IN_FLIGHT) {
      workerStats.droppedBatches++;
      if (!this.dropping) this.log.warn({ worker: this.index, pid: this.child.pid }, "fan-out worker is behind; dropping media until it catches up");
      this.dropping = true;
      return;
    }
    this.dropping = false;
    this.inFlight++;
    try {
      this.child.send(batch, undefined, {}, this.sent);
    } catch {
      this.inFlight--;
    }
  }
}

class RemoteOutput implements ViewerOutput {
  private closed = false;

  constructor(
    private readonly worker: Worker,
    readonly id: number,
    private readonly track: number,
    private readonly history: PacketHistory,
    private readonly nominated: () => SendPath | undefined,
    /** The path the worker sends on. */
    private path: SendPath,
    private readonly onLost: () => void,
  ) {}

  write(sequenceNumber: number, timestamp: number, marker: boolean, payload: Uint8Array): void {
    if (this.closed) return;
    this.checkPath();
    this.worker.queuePacket(this.track, this.history, sequenceNumber, timestamp, marker, payload, this.id);
  }

  resend(sequenceNumber: number): boolean {
    if (this.closed || this.history.find(sequenceNumber) < 0) return false;
    this.worker.queueNack(this.id, sequenceNumber);
    return true;
  }

  /**
   * A new nominated path goes to the worker with its socket (a viewer whose ICE picks another
   * address). werift keeps the pair through an ICE restart on the same addresses, as a Chromium
   * restart in test/e2e/workers.test.ts shows; this is for when it does not.
   */
  private checkPath(): void {
    const path = this.nominated();
    if (path === this.path || path === undefined) return;
    if (!path.socket) {
      // TCP or TURN now: werift frames those, the worker cannot; the viewer reconnects.
      this.lost();
      return;
    }
    this.path = path;
    this.worker.post({ type: "path", id: this.id, address: path.address, port: path.port }, path.socket);
  }

  lost(): void {
    if (this.closed) return;
    this.close();
    this.onLost();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.outputs.delete(this.id);
    this.worker.post({ type: "remove", id: this.id });
  }
}

export class FanoutWorkers implements RemoteOutputs {
  private readonly workers: Worker[];
  private nextId = 1;
  private closing = false;
  /** Each fan-out's history stands for its track; numbered for the workers on first use. */
  private readonly trackIds = new WeakMap<PacketHistory, number>();
  private nextTrack = 1;

  constructor(count: number, log: Logger) {
    if (!existsSync(WORKER_SCRIPT)) {
      throw new Error(`FORWARD_WORKERS needs the built server (${WORKER_SCRIPT} is missing): run it with npm start`);
    }
    this.workers = Array.from({ length: count }, (_, i) => new Worker(i, log, () => this.closing));
  }

  /** Each worker's counters: packets it has sent, outputs it holds. */
  counters(): Promise<{ pid: number; sent: number; outputs: number }[]> {
    return Promise.all(this.workers.map(async (w) => ({ pid: w.child.pid ?? 0, ...(await w.counters()) })));
  }

  /** Process ids of the workers that are taking viewers. */
  get pids(): number[] {
    return this.workers.filter((w) => w.ready && w.child.connected).map((w) => w.child.pid ?? 0);
  }

  /** Resolves once every worker has started (or failed to). */
  async whenStarted(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.started));
  }

  attach(o: RemoteOutputRequest): ViewerOutput | undefined {
    if (this.closing) return undefined;
    const path = o.path();
    const socket = path?.socket;
    if (!path || !socket) return undefined;
    const worker = this.workers.filter((w) => w.ready && w.child.connected).sort((a, b) => a.outputs.size - b.outputs.size)[0];
    if (!worker) return undefined;
    let track = this.trackIds.get(o.history);
    if (track === undefined) {
      track = this.nextTrack++;
      this.trackIds.set(o.history, track);
    }
    const id = this.nextId++;
    const output = new RemoteOutput(worker, id, track, o.history, o.path, path, o.onLost);
    worker.outputs.set(id, output);
    const k = o.keys;
    worker.post(
      {
        type: "add",
        id,
        track,
        kind: o.history.kind,
        identity: o.identity,
        // Only the key fields: werift's context object carries more than IPC can clone.
        keys: {
          profile: k.profile,
          srtpSessionKey: k.srtpSessionKey,
          srtpSessionSalt: k.srtpSessionSalt,
          ...(k.srtpSessionAuthTag ? { srtpSessionAuthTag: k.srtpSessionAuthTag } : {}),
        },
        extensionIds: o.extensionIds,
        address: path.address,
        port: path.port,
      },
      socket,
    );
    return output;
  }

  /** Ends every worker (SIGTERM, SIGKILL after 2 s); idempotent. */
  async close(): Promise<void> {
    if (this.closing) {
      await Promise.all(this.workers.map((w) => w.exited));
      return;
    }
    this.closing = true;
    await Promise.all(
      this.workers.map(async (w) => {
        const child = w.child;
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
        await w.exited;
        clearTimeout(timer);
      }),
    );
  }
}
