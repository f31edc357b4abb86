// Jobs survive their node: three node processes on one real redis-server, a real nginx-rtmp and
// real FFmpeg. A /start-stream job and a relay task started on node A are listed on every node;
// after kill -9 of A (its FFmpegs die with it, as on a dead machine) another node runs both within
// 15 s, its HLS is served through any node and the relay reaches its target again; a stop sent
// to a third node stops them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auth, KEY } from "../bridges/relay-bodies.js";
import { makeMedia, pushRtmp, stopChild } from "../helpers/ffmpeg-source.js";
import { probe } from "../helpers/ffprobe.js";
import { sleep } from "../helpers/net.js";
import { startNginxRtmp, type NginxRtmp } from "../helpers/nginx-rtmp.js";
import { children } from "../helpers/procfs.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startNode, startRedis, type NodeProc, type RedisProc } from "./processes.js";

const need = requireOrSkip("redis-server", "ffmpeg", "ffprobe", "nginx-rtmp");
const API_KEY = "transcoder-key-for-tests";
const JSON_HEADERS = { "content-type": "application/json", "x-api-key": API_KEY };

interface StreamEntry {
  streamId: string;
  state: string;
  node?: string;
}
interface RelayEntry {
  id: string;
  state: string;
  targets: { url: string; state: string }[];
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch {
      // not yet
    }
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await sleep(250);
  }
}

const streams = async (node: NodeProc): Promise<StreamEntry[]> =>
  ((await (await fetch(`${node.base}/streams`, { headers: { "x-api-key": API_KEY } })).json()) as { streams: StreamEntry[] }).streams;
const relays = async (node: NodeProc): Promise<RelayEntry[]> => (await (await fetch(`${node.base}/api/relay?${auth()}`)).json()) as RelayEntry[];
const relayCommand = (node: NodeProc, body: unknown) =>
  fetch(`${node.base}/api/relay?${auth()}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe.skipIf(!need.ok)(need.title("jobs survive their node"), () => {
  let redis: RedisProc;
  let nginx: NginxRtmp;
  let source: ReturnType<typeof pushRtmp>;
  let media: string;
  const dirs: string[] = [];
  const nodes: Record<string, NodeProc> = {};

  beforeAll(async () => {
    media = mkdtempSync(path.join(tmpdir(), "jobs-media-"));
    dirs.push(media);
    await makeMedia(path.join(media, "clip.mp4"), [
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=320x240:rate=25",
      "-f",
      "lavfi",
      "-i",
      "sine=sample_rate=44100",
      "-t",
      "4",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-g",
      "25",
      "-pix_fmt",
      "yuv420p",
      "-c:a",
      "aac",
    ]);
    [redis, nginx] = await Promise.all([startRedis(), startNginxRtmp()]);
    source = pushRtmp(nginx.url("cam-src"));
    const env = (id: string) => {
      const dir = mkdtempSync(path.join(tmpdir(), `jobs-${id}-`));
      dirs.push(dir);
      return {
        TRANSCODER_API_KEY: API_KEY,
        RELAY_KEY: KEY,
        RELAY_RATE_LIMIT: "100000",
        MEDIA_DIR: media,
        HLS_DIR: path.join(dir, "hls"),
        RELAY_STATE_FILE: path.join(dir, "relay.json"),
        LOG_LEVEL: process.env.CLUSTER_TEST_LOGS ? "info" : "warn",
      };
    };
    for (const n of await Promise.all(["node-a", "node-b", "node-c"].map((id) => startNode(id, redis.url, env(id))))) nodes[n.id] = n;
  }, 120_000);

  afterAll(async () => {
    if (process.env.CLUSTER_TEST_LOGS) {
      const { writeFileSync } = await import("node:fs");
      for (const n of Object.values(nodes)) writeFileSync(`${process.env.CLUSTER_TEST_LOGS}/jobs-${n.id}.log`, n.output());
    }
    await Promise.all(Object.values(nodes).map((n) => n.kill()));
    if (source) await stopChild(source);
    await nginx?.stop();
    await redis?.kill();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("a /start-stream job and a relay task started on A run on another node within 15 s of kill -9 of A; a stop from a third node stops them", async () => {
    const { "node-a": a, "node-b": b, "node-c": c } = nodes as Record<string, NodeProc>;
    // The source is up before the job pulls it.
    await eventually(
      "the RTMP source",
      () => probe(nginx.url("cam-src"), { extraArgs: ["-read_intervals", "%+0.5"], timeoutMs: 5000 }),
      () => true,
      20_000,
    );
    const started = await fetch(`${a.base}/start-stream`, {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify({ streamId: "cam", rtmpUrl: nginx.url("cam-src") }),
    });
    expect(started.status).toBe(200);
    const relayStart = await relayCommand(a, {
      cmd: "1",
      type: "video",
      list: [{ id: "loop", src: [{ url: "clip.mp4" }], forward: [{ url: nginx.url("relay-out") }] }],
    });
    expect(relayStart.status).toBe(200);

    // Every node lists both, run by A; A's HLS is served through C.
    for (const node of [a, b, c]) {
      const list = await eventually(
        "the job listed",
        () => streams(node),
        (l) => l.some((s) => s.streamId === "cam"),
      );
      expect(list.find((s) => s.streamId === "cam")?.node).toBe("node-a");
      await eventually(
        "the relay listed",
        () => relays(node),
        (l) => l.some((t) => t.id === "loop"),
      );
    }
    await eventually(
      "the playlist through C",
      () => fetch(`${c.base}/hls/cam/stream.m3u8`).then((r) => r.status),
      (s) => s === 200,
      20_000,
    );
    await eventually(
      "the relay output",
      () => probe(nginx.url("relay-out"), { extraArgs: ["-read_intervals", "%+0.5"], timeoutMs: 5000 }),
      () => true,
      20_000,
    );

    // A dies with its FFmpegs.
    const pid = a.child.pid!;
    const ffmpegs = children(pid).map((p) => p.pid);
    await a.kill();
    for (const p of ffmpegs) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // already gone
      }
    }
    const killedAt = performance.now();
    const running = await eventually(
      "the job on a survivor",
      () => streams(b),
      (l) => l.some((s) => s.streamId === "cam" && s.node !== "node-a" && s.state === "running"),
    );
    const owner = running.find((s) => s.streamId === "cam")!.node!;
    const relayTaken = await eventually(
      "the relay on a survivor",
      () => relays(c),
      (l) => l.some((t) => t.id === "loop" && t.targets[0]?.state === "running"),
    );
    expect(relayTaken.filter((t) => t.id === "loop")).toHaveLength(1);
    expect(performance.now() - killedAt).toBeLessThan(15_000);
    console.log(`[jobs] taken over by ${owner} ${Math.round(performance.now() - killedAt)} ms after kill -9`);

    // The relay reaches its target again, and the HLS restarts on the new node, served by either.
    await eventually(
      "the relay output again",
      () => probe(nginx.url("relay-out"), { extraArgs: ["-read_intervals", "%+0.5"], timeoutMs: 5000 }),
      () => true,
      20_000,
    );
    for (const node of [b, c])
      await eventually(
        "the playlist again",
        () => fetch(`${node.base}/hls/cam/stream.m3u8`).then((r) => r.status),
        (s) => s === 200,
        20_000,
      );

    // Stopped from the node that does not run them.
    const other = owner === "node-b" ? c : b;
    const stop = await fetch(`${other.base}/stop-stream`, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ streamId: "cam" }) });
    expect(stop.status).toBe(200);
    expect(await stop.json()).toEqual({ status: "success", message: "Stream cam stopped." });
    const relayStop = await relayCommand(other, {
      cmd: "2",
      type: "video",
      list: [{ id: "loop", src: [{ url: "" }], forward: [{ url: nginx.url("relay-out") }] }],
    });
    expect(relayStop.status).toBe(200);
    for (const node of [b, c]) {
      await eventually(
        "no job",
        () => streams(node),
        (l) => l.length === 0,
      );
      await eventually(
        "the relay stopped",
        () => relays(node),
        (l) => l.find((t) => t.id === "loop")?.targets[0]?.state === "stopped",
      );
    }
    const again = await fetch(`${other.base}/stop-stream`, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ streamId: "cam" }) });
    expect(again.status).toBe(404);
  }, 120_000);
});
