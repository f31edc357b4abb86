// An AV1 publisher's RTP for tests: FFmpeg (5.1) encodes AV1 but has no AV1 RTP packetizer, so
// the stream is encoded once to IVF and packetized here per the AV1 RTP payload spec
// (aomediacodec.github.io/av1-rtp-spec): temporal delimiters dropped, OBUs as elements with a
// LEB128 length each (W = 0), fragmented across packets with Z/Y, N on a sequence's first packet.
import { execFileSync } from "node:child_process";
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { resolveFfmpeg } from "../../src/bridges/ffmpeg-path.js";
import { readLeb128, writeLeb128 } from "../../src/media/av1.js";

const OBU_SEQUENCE_HEADER = 1;
const OBU_TEMPORAL_DELIMITER = 2;
const OBU_TILE_LIST = 8;
const MAX_PAYLOAD = 1100;

export interface Av1Packet {
  payload: Buffer;
  marker: boolean;
  /** 90 kHz RTP timestamp. */
  timestamp: number;
}

/** Encodes `seconds` of a test pattern to AV1 in IVF (libaom, realtime speed, keyframe every `gop`). */
export function encodeAv1Ivf(file: string, seconds: number, fps = 15, gop = 15): void {
  execFileSync(resolveFfmpeg(), [
    "-hide_banner",
    "-loglevel",
    "error",
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=320x240:rate=${fps}`,
    "-t",
    String(seconds),
    "-c:v",
    "libaom-av1",
    "-cpu-used",
    "8",
    "-usage",
    "realtime",
    "-g",
    String(gop),
    "-keyint_min",
    String(gop),
    "-b:v",
    "300k",
    "-f",
    "ivf",
    "-y",
    file,
  ]);
}

/** The OBUs of one temporal unit, as written (with their headers and size fields). */
function obusOf(tu: Buffer): { type: number; bytes: Buffer }[] {
  const out: { type: number; bytes: Buffer }[] = [];
  let off = 0;
  while (off < tu.length) {
    const header = tu[off]!;
    const type = (header >> 3) & 0x0f;
    const ext = (header & 0x04) !== 0;
    const hasSize = (header & 0x02) !== 0;
    let p = off + 1 + (ext ? 1 : 0);
    let size = tu.length - p;
    if (hasSize) {
      const leb = readLeb128(tu, p);
      if (!leb) throw new Error("bad OBU size");
      size = leb.value;
      p += leb.length;
    }
    out.push({ type, bytes: tu.subarray(off, p + size) });
    off = p + size;
  }
  return out;
}

/** RTP payloads of an IVF file's temporal units, one timestamp each. */
export function av1RtpPackets(ivf: Buffer): Av1Packet[] {
  const headerSize = ivf.readUInt16LE(6);
  const rateNum = ivf.readUInt32LE(16);
  const rateDen = ivf.readUInt32LE(20);
  const packets: Av1Packet[] = [];
  let off = headerSize;
  while (off + 12 <= ivf.length) {
    const size = ivf.readUInt32LE(off);
    const pts = Number(ivf.readBigUInt64LE(off + 4));
    const tu = ivf.subarray(off + 12, off + 12 + size);
    off += 12 + size;
    const timestamp = Math.round((pts * 90000 * rateDen) / rateNum) >>> 0;
    const obus = obusOf(tu).filter((o) => o.type !== OBU_TEMPORAL_DELIMITER && o.type !== OBU_TILE_LIST);
    const newSequence = obus.some((o) => o.type === OBU_SEQUENCE_HEADER);
    let elements: Buffer[] = [];
    let length = 1;
    // Z of the packet being filled: it starts with the tail of an OBU the previous packet began.
    let startsWithTail = false;
    const first = packets.length;
    const flush = (continues: boolean) => {
      const agg = (startsWithTail ? 0x80 : 0) | (continues ? 0x40 : 0) | (newSequence && packets.length === first ? 0x08 : 0);
      packets.push({ payload: Buffer.concat([Buffer.from([agg]), ...elements.flatMap((e) => [writeLeb128(e.length), e])]), marker: false, timestamp });
      elements = [];
      length = 1;
      startsWithTail = continues;
    };
    for (const obu of obus) {
      let at = 0;
      while (at < obu.bytes.length) {
        const room = MAX_PAYLOAD - length - 3;
        if (room <= 16) {
          flush(false);
          continue;
        }
        const chunk = obu.bytes.subarray(at, at + room);
        elements.push(chunk);
        length += 3 + chunk.length;
        at += chunk.length;
        if (at < obu.bytes.length) flush(true);
      }
    }
    if (elements.length > 0) flush(false);
    packets[packets.length - 1]!.marker = true;
  }
  return packets;
}

/**
 * Sends the file's packets as RTP to 127.0.0.1:`port` in real time, looped; resolves stop().
 * Each loop keeps the sequence and timestamps going up.
 */
export function replayAv1(file: string, port: number, fps = 15): { stop(): void } {
  const packets = av1RtpPackets(readFileSync(file));
  const socket = dgram.createSocket("udp4");
  let seq = Math.floor(Math.random() * 0x10000);
  let i = 0;
  let base = 0;
  const span = packets.length > 0 ? packets[packets.length - 1]!.timestamp + Math.round(90000 / fps) : 0;
  const ssrc = 0x1234abcd;
  const timer = setInterval(() => {
    // One temporal unit per tick: every packet up to and including the next marker.
    while (i < packets.length) {
      const p = packets[i++]!;
      const header = Buffer.alloc(12);
      header[0] = 0x80;
      header[1] = (p.marker ? 0x80 : 0) | 35;
      header.writeUInt16BE(seq, 2);
      seq = (seq + 1) & 0xffff;
      header.writeUInt32BE((p.timestamp + base) >>> 0, 4);
      header.writeUInt32BE(ssrc, 8);
      socket.send(Buffer.concat([header, p.payload]), port, "127.0.0.1");
      if (p.marker) break;
    }
    if (i >= packets.length) {
      i = 0;
      base += span;
    }
  }, 1000 / fps);
  return {
    stop: () => {
      clearInterval(timer);
      socket.close();
    },
  };
}
