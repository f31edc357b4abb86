// Retention per ended session. The server (this checkout's src/, compiled, in a process of its
// own, with recording and every SRS-style hook on) takes a few hundred WHIP and WHEP sessions in
// rooms of their own names, a third of them ended by vanishing instead of DELETE. At rest after a
// full GC, a heap snapshot of the server is taken after a warm-up and again after the churn:
//
// - the bytes of JavaScript objects (objects, closures and their contexts, arrays) it
//   holds beyond the warm-up's, divided by the sessions ended, must stay under LEAK_BOUND_BYTES.
//   A map keyed by session or room that is never pruned, a listener or timer that outlives its
//   session, a closure holding a werift peer: each costs hundreds of bytes to kilobytes a session.
//   V8's compiled code and its bookkeeping (feedback, shapes, dependent-code lists) are left out:
//   they grow as functions get optimised, not with sessions. So are strings: the server's one-off
//   strings (script sources, the HTTP parser's wasm) are freed lazily, tens of kilobytes at once,
//   which would hide growth, and a leaked string comes with the object or entry holding it;
// - no session, room or werift peer may be left at all.
//
//   LEAK_SESSIONS=600 npx vitest run test/e2e/leak.test.ts     # more sessions, a finer figure
//   FORWARD_WORKERS=2 npx vitest run test/e2e/leak.test.ts     # any server setting passes through
//   LEAK_SNAPSHOT_DIR=/tmp/snap ...                             # keep the two snapshots
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { HeapProbe, heapProbeArgs, readSnapshot, type HeapCount, type HeapProbeResult } from "../helpers/heap-probe.js";
import { freeTcpPort, sleep } from "../helpers/net.js";
import { WhepClient } from "../helpers/whep-client.js";
import { WhipClient } from "../helpers/whip-client.js";

const num = (name: string, def: number): number => {
  const v = process.env[name];
  const n = v === undefined || v.trim() === "" ? def : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: expected a number, got ${v}`);
  return n;
};

/** Sessions ended after the warm-up (publishers and subscribers together). */
const SESSIONS = num("LEAK_SESSIONS", 300);
/**
 * The warm-up fills what the server keeps by design up to a bound set by concurrency, not by
 * the number of sessions: the packet-history pool (8 rings per kind, src/sfu/history.ts), the
 * HTTP client pool of the hooks (one client per concurrent request to the receiver).
 */
const WARMUP_SESSIONS = num("LEAK_WARMUP_SESSIONS", 100);
/** Bytes of JavaScript objects one ended session may leave behind. */
const BOUND_BYTES = num("LEAK_BOUND_BYTES", 256);
/** Classes of which no instance may be left once every session has ended. */
const PER_SESSION_CLASSES = ["Publisher", "Subscriber", "Room", "TrackFanout", "FastSender", "RTCPeerConnection", "RTCDtlsTransport", "Connection"];

const root = path.resolve(new URL("../..", import.meta.url).pathname);
const distDir = path.join(root, ".tmp", "leak-dist");
const workDir = mkdtempSync(path.join(tmpdir(), "sfu-leak-"));
const snapshotDir = process.env.LEAK_SNAPSHOT_DIR ?? workDir;
mkdirSync(snapshotDir, { recursive: true });

let server: ChildProcess | undefined;
let heap: HeapProbe | undefined;
let hookReceiver: http.Server | undefined;
let base = "";
let serverLog = "";

function build(): void {
  rmSync(distDir, { recursive: true, force: true });
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--outDir", distDir], {
    cwd: root,
    stdio: "pipe",
  });
}

// ---- the server --------------------------------------------------------------------------

/** Answers every hook "allowed", so each session also goes through the hooks' bookkeeping. */
async function startHookReceiver(): Promise<string> {
  hookReceiver = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end("0"));
  });
  await new Promise<void>((resolve) => hookReceiver!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(hookReceiver.address() as AddressInfo).port}/hook`;
}

async function startServer(): Promise<void> {
  const port = await freeTcpPort();
  const hook = await startHookReceiver();
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
      RECORD_ENABLED: "true",
      RECORD_DIR: path.join(workDir, "records"),
      HLS_DIR: path.join(workDir, "hls"),
      PEER_TIMEOUT_SECONDS: "3",
      HOOK_ON_CONNECT: hook,
      HOOK_ON_CLOSE: hook,
      HOOK_ON_PUBLISH: hook,
      HOOK_ON_UNPUBLISH: hook,
      HOOK_ON_PLAY: hook,
      HOOK_ON_STOP: hook,
      HOOK_ON_RECORD: hook,
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  heap = new HeapProbe(server);
  const keep = (d: Buffer): void => {
    serverLog = (serverLog + d.toString()).slice(-20_000);
  };
  server.stdout?.on("data", keep);
  server.stderr?.on("data", keep);
  base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (
      await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    if (server.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`server did not start:\n${serverLog}`);
}

async function liveRooms(): Promise<number> {
  const text = await fetch(`${base}/metrics`).then((r) => r.text());
  return Number(/^live_rooms (\d+)/m.exec(text)?.[1] ?? NaN);
}

// ---- media without FFmpeg: VP8-shaped and Opus-shaped RTP to the publisher's ports ---------

/** 15 fps of VP8 (a keyframe every 15 frames) and 50 Opus packets a second, of filler bytes. */
function pump(client: WhipClient): () => void {
  const socket = dgram.createSocket("udp4");
  const video = client.port("video");
  const audio = client.port("audio");
  let vseq = 0;
  let aseq = 0;
  let frame = 0;
  const rtp = (pt: number, seq: number, ts: number, marker: boolean, payload: Buffer): Buffer => {
    const h = Buffer.alloc(12);
    h[0] = 0x80;
    h[1] = (marker ? 0x80 : 0) | pt;
    h.writeUInt16BE(seq & 0xffff, 2);
    h.writeUInt32BE(ts >>> 0, 4);
    h.writeUInt32BE(0x1234, 8);
    return Buffer.concat([h, payload]);
  };
  // VP8 payload descriptor (S=1), then a frame tag: P=0 with the keyframe start code, or P=1.
  const keyframe = Buffer.concat([Buffer.from([0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]), Buffer.alloc(600, 7)]);
  const delta = Buffer.concat([Buffer.from([0x10, 0x11, 0x02, 0x00]), Buffer.alloc(300, 9)]);
  const opus = Buffer.alloc(80, 0x55);
  const videoTimer = setInterval(() => {
    socket.send(rtp(96, vseq++, frame * 6000, true, frame % 15 === 0 ? keyframe : delta), video, "127.0.0.1");
    frame++;
  }, 66);
  const audioTimer = setInterval(() => socket.send(rtp(111, aseq++, aseq * 960, false, opus), audio, "127.0.0.1"), 20);
  return () => {
    clearInterval(videoTimer);
    clearInterval(audioTimer);
    socket.close();
  };
}

// ---- churn ----------------------------------------------------------------------------------

interface Tally {
  publishes: number;
  plays: number;
  deletes: number;
  vanishes: number;
  /** Sessions that were refused or never connected (ICE and DTLS). */
  joinFailures: string[];
}

const newTally = (): Tally => ({ publishes: 0, plays: 0, deletes: 0, vanishes: 0, joinFailures: [] });

let roomSeq = 0;

/**
 * `sessions` sessions in `rooms` parallel lines, each room of a name of its own: a publisher,
 * then subscribers `wave` at a time (two waves) while it publishes, then the publisher leaves.
 * Every third session vanishes instead of sending DELETE.
 */
async function churn(sessions: number, tally: Tally, rooms = 3, wave = 4): Promise<void> {
  let left = sessions;
  let n = 0;
  const leave = async (c: { close(o: { vanish: boolean }): Promise<void> }): Promise<void> => {
    const vanish = n++ % 3 === 2;
    if (vanish) tally.vanishes++;
    else tally.deletes++;
    await c.close({ vanish });
  };
  const line = async (): Promise<void> => {
    while (left > 0) {
      left--;
      const name = `leak${++roomSeq}`;
      const pub = await WhipClient.create({ video: { codec: "VP8" }, audio: true, connectTimeoutMs: 10_000 });
      const stop = pump(pub);
      tally.publishes++;
      try {
        await pub.publish(`${base}/api/whip/publish/${name}`);
        for (let k = 0; k < 2 && left > 0; k++) {
          const count = Math.min(wave, left);
          left -= count;
          await Promise.all(
            Array.from({ length: count }, async () => {
              const sub = new WhepClient({ video: ["VP8"], audio: true, connectTimeoutMs: 10_000 });
              tally.plays++;
              try {
                await sub.play(`${base}/api/whep/play/${name}`);
                await sleep(300);
              } catch (err) {
                tally.joinFailures.push(`play ${name}: ${String((err as Error).message).slice(0, 200)}`);
              }
              await leave(sub);
            }),
          );
        }
      } catch (err) {
        tally.joinFailures.push(`publish ${name}: ${String((err as Error).message).slice(0, 200)}`);
      }
      stop();
      await leave(pub);
    }
  };
  await Promise.all(Array.from({ length: rooms }, line));
}

/** Waits until every room and session has ended (vanished peers time out), then probes. */
async function atRest(label: string): Promise<HeapProbeResult & HeapCount> {
  const t0 = Date.now();
  while ((await liveRooms()) > 0) {
    if (Date.now() - t0 > 60_000) throw new Error(`rooms still live after 60 s:\n${serverLog.slice(-3000)}`);
    await sleep(500);
  }
  // Closing peers' last timers (werift's ICE and DTLS ones run out within a few seconds), merges.
  await sleep(num("LEAK_REST_MS", 8000));
  const p = await heap!.take(path.join(snapshotDir, `${label}.heapsnapshot`));
  const count = readSnapshot(p.snapshot!, PER_SESSION_CLASSES);
  if (!process.env.LEAK_SNAPSHOT_DIR) rmSync(p.snapshot!, { force: true });
  const mib = (b: number) => (b / 2 ** 20).toFixed(2);
  console.log(
    `[leak] ${label}: objects ${mib(count.objectBytes)} MiB, heap ${mib(p.heapUsed)} MiB, external ${mib(p.external)} MiB, rss ${mib(p.rss)} MiB; ` +
      `left: ${[...count.instances].map(([k, v]) => `${k} ${v}`).join(", ")}`,
  );
  return { ...p, ...count };
}

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 3000));
    if (server.exitCode === null) server.kill("SIGKILL");
  }
  hookReceiver?.close();
  rmSync(workDir, { recursive: true, force: true });
});

it(`an ended session leaves under ${BOUND_BYTES} B of objects and no peer behind (${SESSIONS} sessions)`, async () => {
  build();
  await startServer();
  const warm = newTally();
  await churn(WARMUP_SESSIONS, warm);
  const before = await atRest("after-warm-up");
  const tally = newTally();
  const t0 = Date.now();
  await churn(SESSIONS, tally);
  const churnSeconds = Math.round((Date.now() - t0) / 1000);
  const after = await atRest("after-churn");

  const ended = tally.publishes + tally.plays;
  const perSession = (x: number, y: number) => Math.round((y - x) / ended);
  console.log(
    `[leak] ${JSON.stringify({
      sessions: ended,
      publishes: tally.publishes,
      plays: tally.plays,
      deletes: tally.deletes,
      vanishes: tally.vanishes,
      joinFailures: tally.joinFailures.length + warm.joinFailures.length,
      churnSeconds,
      retainedObjectBytesPerSession: perSession(before.objectBytes, after.objectBytes),
      heapBytesPerSession: perSession(before.heapUsed, after.heapUsed),
      heapWithoutCodeBytesPerSession: perSession(before.heapUsed - before.code, after.heapUsed - after.code),
      externalBytesPerSession: perSession(before.external, after.external),
    })}`,
  );
  for (const f of [...warm.joinFailures, ...tally.joinFailures]) console.log(`[leak] join failure: ${f}`);
  expect(server!.exitCode, serverLog).toBeNull();
  expect(Object.fromEntries(after.instances), "instances left once every session ended").toEqual(Object.fromEntries(PER_SESSION_CLASSES.map((c) => [c, 0])));
  expect(
    perSession(before.objectBytes, after.objectBytes),
    `object bytes retained per ended session (${before.objectBytes} -> ${after.objectBytes} over ${ended} sessions)`,
  ).toBeLessThan(BOUND_BYTES);
  expect([...warm.joinFailures, ...tally.joinFailures], "sessions that did not connect").toEqual([]);
}, 240_000);
