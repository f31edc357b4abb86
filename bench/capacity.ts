// Capacity: how many 2.5 Mbit/s viewers one core of the server serves, with viewers cheap enough
// that hundreds fit on the bench's own core. Each is a werift peer that completes ICE and DTLS like
// any other, then has its socket's SRTP counted and dropped before werift sees it (STUN, DTLS and
// RTCP still reach werift, so consent checks are answered and the session stays alive).
import type dgram from "node:dgram";
import type { RTCDtlsTransport } from "werift";
import { nominatedPath } from "../src/sfu/werift-adapter.js";
import { sleep } from "../test/helpers/net.js";
import { playStream, type WhepClient } from "../test/helpers/whep-client.js";
import { publishTestStream } from "../test/helpers/whip-client.js";

export interface CapacityRow {
  viewers: number;
  connected: number;
  /** Server process (and its workers) CPU, % of one core. */
  serverCpuPercent: number;
  packetsInPerSecond: number;
  /** Marginal server CPU per forwarded packet over the N = 0 row, µs. */
  usPerForwardedPacket: number | null;
  /** Viewers one core would serve at this rate: those connected over the marginal CPU fraction. */
  viewersPerCore: number | null;
  eventLoopP99Ms: number;
  /** Packets the viewers did not receive of those the server took in × N. */
  lossPercent: number;
  rssPerViewerKiB: number | null;
}

/** A viewer that only counts its SRTP packets once connected. */
interface CountingViewer {
  client: WhepClient;
  packets: number;
}

async function countingViewer(url: string): Promise<CountingViewer> {
  const { client } = await playStream(url, { audio: false });
  const viewer: CountingViewer = { client, packets: 0 };
  const dtls = (client.pc.getTransceivers()[0]!.receiver as unknown as { dtlsTransport: RTCDtlsTransport }).dtlsTransport;
  const socket: dgram.Socket | undefined = nominatedPath(dtls)()?.socket;
  if (!socket) throw new Error("the viewer has no UDP path");
  const listeners = socket.listeners("message") as ((data: Buffer, rinfo: dgram.RemoteInfo) => void)[];
  socket.removeAllListeners("message");
  socket.on("message", (data: Buffer, rinfo: dgram.RemoteInfo) => {
    const first = data[0]!;
    const type = data[1]! & 0x7f;
    // RTP (RFC 7983: first byte 128-191), not RTCP (RFC 5761: packet types 64-95 once the marker bit is off).
    if (first >= 128 && first <= 191 && (type < 64 || type > 95)) {
      viewer.packets++;
      return;
    }
    for (const l of listeners) l(data, rinfo);
  });
  return viewer;
}

const LOOP_TICK_MS = 10;

/**
 * Server CPU, loss and RSS at each N of cheap viewers of one 2.5 Mbit/s VP8 room, the viewers
 * joined in steps; `cpuSeconds` is the server's (and its workers') CPU so far.
 */
export async function capacityTable(
  base: string,
  metricsOf: () => Promise<Map<string, number>>,
  cpuSeconds: () => number,
  file: string,
  ns: readonly number[],
  windowMs = 8000,
): Promise<CapacityRow[]> {
  const { client: pub } = await publishTestStream(`${base}/api/whip/publish/capacity`, { video: { codec: "VP8" }, audio: false, source: { file } });
  const viewers: CountingViewer[] = [];
  const rows: CapacityRow[] = [];
  try {
    await sleep(1500);
    let baseline = { cpu: 0, rss: 0 };
    let failures = 0;
    for (const n of ns) {
      while (viewers.length < n && failures < 20) {
        try {
          viewers.push(await countingViewer(`${base}/api/whep/play/capacity`));
        } catch {
          // A viewer that does not connect is left out; the row says how many did.
          failures++;
        }
        if (viewers.length % 20 === 19) await sleep(200);
      }
      await sleep(2000);
      const before = await metricsOf();
      const cpu0 = cpuSeconds();
      const received0 = viewers.reduce((a, v) => a + v.packets, 0);
      const t0 = performance.now();
      await sleep(windowMs);
      const after = await metricsOf();
      const seconds = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds() - cpu0;
      const received = viewers.reduce((a, v) => a + v.packets, 0) - received0;
      const key = 'live_rtp_packets_total{room="capacity"}';
      const inPackets = (after.get(key) ?? 0) - (before.get(key) ?? 0);
      const rss = (after.get("process_resident_memory_bytes") ?? 0) / 1048576;
      if (n === 0) baseline = { cpu, rss };
      const marginal = cpu - baseline.cpu;
      const connected = viewers.filter((v) => v.client.pc.connectionState === "connected").length;
      const expected = inPackets * connected;
      rows.push({
        viewers: n,
        connected,
        serverCpuPercent: Math.round((cpu / seconds) * 1000) / 10,
        packetsInPerSecond: Math.round(inPackets / seconds),
        usPerForwardedPacket: n === 0 || expected === 0 ? null : Math.round(((marginal * 1e6) / expected) * 100) / 100,
        viewersPerCore: n === 0 || marginal <= 0 ? null : Math.round(connected / (marginal / seconds)),
        eventLoopP99Ms: Math.max(0, Math.round(((after.get("nodejs_eventloop_lag_p99_seconds") ?? 0) * 1000 - LOOP_TICK_MS) * 10) / 10),
        lossPercent: expected > 0 ? Math.max(0, Math.round((1 - received / expected) * 10000) / 100) : 0,
        rssPerViewerKiB: n === 0 ? null : Math.round(((rss - baseline.rss) * 1024) / n),
      });
    }
  } finally {
    await Promise.all(viewers.map((v) => v.client.close()));
    await pub.close();
  }
  return rows;
}
