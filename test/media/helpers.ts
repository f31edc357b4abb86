import { spawn, execFile, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { AddressInfo } from "node:net";

// The system FFmpeg (Debian's 5.1 has every encoder these tests use); overridable for odd machines.
export const FFMPEG = process.env.MEDIA_TEST_FFMPEG ?? "/usr/bin/ffmpeg";
export const FFPROBE = process.env.MEDIA_TEST_FFPROBE ?? "/usr/bin/ffprobe";

const run = promisify(execFile);

export function makeTempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "media-test-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ProbeStream {
  codec_name: string;
  codec_type: string;
  width?: number;
  height?: number;
  channels?: number;
  sample_rate?: string;
  duration?: string;
  nb_read_frames?: string;
  nb_read_packets?: string;
  profile?: string;
}
export interface ProbeResult {
  streams: ProbeStream[];
  format: { format_name: string; duration?: string };
}

export async function ffprobe(file: string, countFrames = false): Promise<ProbeResult> {
  const args = ["-v", "error", "-show_streams", "-show_format", "-of", "json"];
  if (countFrames) args.push("-count_frames", "-count_packets");
  const { stdout } = await run(FFPROBE, [...args, file], { timeout: 20_000 });
  return JSON.parse(stdout) as ProbeResult;
}

/** Decodes the whole file; returns FFmpeg's error output (empty when clean). */
export async function decodeErrors(file: string): Promise<string> {
  const { stderr } = await run(FFMPEG, ["-v", "error", "-i", file, "-f", "null", "-"], { timeout: 30_000 });
  return stderr.trim();
}

/** Decodes an audio file to 48 kHz s16le PCM and returns the number of samples per channel. */
export async function decodedSamples(file: string, channels: number): Promise<number> {
  const { stdout } = await run(FFMPEG, ["-v", "error", "-i", file, "-f", "s16le", "-ar", "48000", "-"], {
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
    timeout: 30_000,
  });
  return stdout.length / (2 * channels);
}

export async function ffmpegFile(args: string[]): Promise<void> {
  await run(FFMPEG, ["-v", "error", "-y", ...args], { timeout: 30_000 });
}

export function writeTemp(dir: string, name: string, data: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

const live = new Set<ChildProcess>();

/** Kills every FFmpeg still running; call from afterEach. */
export function killAll(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

export interface RtpCapture {
  datagrams: Buffer[];
  /** The SDP FFmpeg wrote for the stream (payload type, sprop-parameter-sets). */
  sdp: string;
}

/**
 * Runs FFmpeg with `inputArgs` (input and encoder options) sending one RTP stream to a local UDP
 * socket, and returns every datagram in arrival order once FFmpeg exits.
 */
export async function captureRtp(inputArgs: string[], dir: string, pktSize = 1200): Promise<RtpCapture> {
  const timeoutMs = 15_000;
  const rtp = dgram.createSocket("udp4");
  const rtcp = dgram.createSocket("udp4");
  const datagrams: Buffer[] = [];
  rtp.on("message", (m) => datagrams.push(m));
  rtcp.on("message", () => {});
  await Promise.all([new Promise<void>((r) => rtp.bind(0, "127.0.0.1", r)), new Promise<void>((r) => rtcp.bind(0, "127.0.0.1", r))]);
  try {
    rtp.setRecvBufferSize(4 * 1024 * 1024);
  } catch {
    // Capped by the kernel: FFmpeg's -readrate pacing keeps the burst small anyway.
  }
  const port = (rtp.address() as AddressInfo).port;
  const rtcpPort = (rtcp.address() as AddressInfo).port;
  const sdpFile = join(dir, `stream-${port}.sdp`);
  const args = [
    "-v",
    "error",
    "-nostdin",
    "-readrate",
    "4",
    ...inputArgs,
    "-sdp_file",
    sdpFile,
    "-f",
    "rtp",
    `rtp://127.0.0.1:${port}?rtcpport=${rtcpPort}&pkt_size=${pktSize}`,
  ];
  const proc = spawn(FFMPEG, args, { stdio: ["ignore", "ignore", "pipe"] });
  live.add(proc);
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ffmpeg timed out: ${stderr}`)), timeoutMs);
      proc.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
      proc.on("error", reject);
    });
    if (code !== 0) throw new Error(`ffmpeg exited with ${code}: ${stderr}`);
    // Let the last datagrams reach the socket's handler.
    await new Promise((r) => setTimeout(r, 100));
    return { datagrams, sdp: readFileSync(sdpFile, "utf8") };
  } finally {
    proc.kill("SIGKILL");
    live.delete(proc);
    rtp.close();
    rtcp.close();
  }
}

/** Deterministic shuffle within windows of `window` packets (seeded LCG, so failures repeat). */
export function shuffleWithin<T>(items: T[], window: number, seed = 1): T[] {
  const out = items.slice();
  let s = seed;
  const rand = (): number => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
  for (let start = 0; start < out.length; start += window) {
    const end = Math.min(out.length, start + window);
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(rand() * (i - start + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
  }
  return out;
}

/** An RtpView for hand-built payloads. */
export function rtp(
  sequenceNumber: number,
  timestamp: number,
  marker: boolean,
  payload: Uint8Array | number[],
): {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
} {
  return { sequenceNumber, timestamp, marker, payload: Uint8Array.from(payload) };
}

/** MSB-first bit writer for hand-built codec headers. */
export class BitWriter {
  private bits: number[] = [];

  u(n: number, value: number): this {
    for (let i = n - 1; i >= 0; i--) this.bits.push(Math.floor(value / 2 ** i) % 2);
    return this;
  }

  ue(value: number): this {
    const v = value + 1;
    const len = Math.floor(Math.log2(v));
    return this.u(len, 0).u(len + 1, v);
  }

  se(value: number): this {
    return this.ue(value > 0 ? 2 * value - 1 : -2 * value);
  }

  /** rbsp_trailing_bits: a 1, then zeros to the byte boundary. */
  trailing(): this {
    this.bits.push(1);
    while (this.bits.length % 8) this.bits.push(0);
    return this;
  }

  bytes(): Buffer {
    const out = Buffer.alloc(Math.ceil(this.bits.length / 8));
    this.bits.forEach((b, i) => {
      if (b) out[i >> 3] |= 0x80 >> (i & 7);
    });
    return out;
  }
}
