// Loopback UDP ports for egress: a free RTP/RTCP pair before FFmpeg starts, and which ports are
// bound right now (FFmpeg binds the SDP's ports itself; the sinks wait until it holds them).

import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { fail } from "../errors.js";

function bindUdp(port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    s.once("error", () => {
      s.close();
      resolve(undefined);
    });
    s.bind(port, "127.0.0.1", () => resolve(s));
  });
}

function closeUdp(s: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      s.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

/** A port P such that P and P+1 (RTP and RTCP) were both free a moment ago. */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const a = await bindUdp(0);
    if (!a) continue;
    const p = a.address().port;
    const b = p < 65535 ? await bindUdp(p + 1) : undefined;
    await closeUdp(a);
    if (b) {
      await closeUdp(b);
      return p;
    }
  }
  throw fail("capacity", "no free UDP port pair on 127.0.0.1");
}

/** UDP ports bound on this host right now, from /proc/net/udp (Linux); undefined when unreadable. */
export function boundUdpPorts(): Set<number> | undefined {
  const ports = new Set<number>();
  let any = false;
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    any = true;
    for (const line of text.split("\n").slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      const hex = local?.split(":").pop();
      if (hex) ports.add(parseInt(hex, 16));
    }
  }
  return any ? ports : undefined;
}
