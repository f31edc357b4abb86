// The per-packet floor of forwarding in this Node: SRTP protect of a 1200-byte RTP packet (the two
// profiles browsers offer, written as cheaply as node:crypto allows) plus dgram.send of the result
// to a loopback socket another process owns. The forwarding path cannot be cheaper than this.
import { spawn } from "node:child_process";
import { createCipheriv, createHmac, randomBytes } from "node:crypto";
import dgram from "node:dgram";

const PACKET = 1200;
const HEADER = 12;

/** A process that binds a UDP port and drops what it reads (its cost is not the server's). */
async function udpSink(): Promise<{ port: number; stop(): void }> {
  const child = spawn(
    process.execPath,
    ["-e", `const s=require("dgram").createSocket("udp4");s.on("message",()=>{});s.bind(0,"127.0.0.1",()=>console.log(s.address().port));`],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once("data", (d) => resolve(Number(String(d).trim())));
    child.once("exit", () => reject(new Error("UDP sink exited")));
  });
  return { port, stop: () => child.kill("SIGKILL") };
}

type Protect = (packet: Buffer, index: number) => Buffer;

/** AES_CM_128_HMAC_SHA1_80 (RFC 3711): AES-128 in counter mode, HMAC-SHA1 tag cut to 80 bits. */
function aesCm(): Protect {
  const key = randomBytes(16);
  const salt = randomBytes(14);
  const authKey = randomBytes(20);
  const iv = Buffer.alloc(16);
  const roc = Buffer.alloc(4);
  return (packet, index) => {
    // IV = salt·2^16 XOR SSRC·2^64 XOR index·2^16
    salt.copy(iv, 0);
    iv[14] = 0;
    iv[15] = 0;
    for (let i = 0; i < 4; i++) iv[4 + i] ^= packet[8 + i]!;
    iv[12] ^= (index >>> 8) & 0xff;
    iv[13] ^= index & 0xff;
    const cipher = createCipheriv("aes-128-ctr", key, iv);
    const body = cipher.update(packet.subarray(HEADER));
    const out = Buffer.allocUnsafe(HEADER + body.length + 10);
    packet.copy(out, 0, 0, HEADER);
    body.copy(out, HEADER);
    const tag = createHmac("sha1", authKey)
      .update(out.subarray(0, HEADER + body.length))
      .update(roc)
      .digest();
    tag.copy(out, HEADER + body.length, 0, 10);
    return out;
  };
}

/** AEAD_AES_128_GCM (RFC 7714): the header is the AAD, a 16-byte tag follows the payload. */
function aesGcm(): Protect {
  const key = randomBytes(16);
  const salt = randomBytes(12);
  const iv = Buffer.alloc(12);
  return (packet, index) => {
    salt.copy(iv, 0);
    for (let i = 0; i < 4; i++) iv[2 + i] ^= packet[8 + i]!;
    iv[10] ^= (index >>> 8) & 0xff;
    iv[11] ^= index & 0xff;
    const cipher = createCipheriv("aes-128-gcm", key, iv);
    cipher.setAAD(packet.subarray(0, HEADER));
    const body = cipher.update(packet.subarray(HEADER));
    cipher.final();
    const out = Buffer.allocUnsafe(HEADER + body.length + 16);
    packet.copy(out, 0, 0, HEADER);
    body.copy(out, HEADER);
    cipher.getAuthTag().copy(out, HEADER + body.length);
    return out;
  };
}

export interface FloorResult {
  packetBytes: number;
  packets: number;
  /** CPU µs per packet (user + system of this process). */
  sendOnlyUs: number;
  aesCmHmacSha1_80Us: number;
  aeadAes128GcmUs: number;
  /** The cheaper of the two profiles, with the send. */
  floorUs: number;
}

async function measure(packets: number, socket: dgram.Socket, port: number, protect?: Protect): Promise<number> {
  const packet = randomBytes(PACKET);
  packet[0] = 0x80;
  packet[1] = 96;
  let pending = 0;
  let done: () => void = () => undefined;
  const sent = () => {
    if (--pending === 0) done();
  };
  const cpu0 = process.cpuUsage();
  // Paced in bursts of 100 so the socket's send buffer never fills (a full buffer is not the floor).
  for (let i = 0; i < packets; i++) {
    packet.writeUInt16BE(i & 0xffff, 2);
    const out = protect ? protect(packet, i & 0xffff) : packet;
    pending++;
    socket.send(out, port, "127.0.0.1", sent);
    if (i % 100 === 99) await new Promise<void>((r) => setImmediate(r));
  }
  if (pending > 0) await new Promise<void>((r) => (done = r));
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / packets;
}

/** Best of three rounds of each variant, in µs per packet. */
export async function measureFloor(packets = 20_000): Promise<FloorResult> {
  const sink = await udpSink();
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  try {
    const cm = aesCm();
    const gcm = aesGcm();
    await measure(2000, socket, sink.port, cm); // warm-up: JIT, crypto init
    const best = async (p?: Protect) => {
      let min = Infinity;
      for (let i = 0; i < 3; i++) min = Math.min(min, await measure(packets, socket, sink.port, p));
      return Math.round(min * 100) / 100;
    };
    const sendOnlyUs = await best();
    const aesCmHmacSha1_80Us = await best(cm);
    const aeadAes128GcmUs = await best(gcm);
    return { packetBytes: PACKET, packets, sendOnlyUs, aesCmHmacSha1_80Us, aeadAes128GcmUs, floorUs: Math.min(aesCmHmacSha1_80Us, aeadAes128GcmUs) };
  } finally {
    socket.close();
    sink.stop();
  }
}
