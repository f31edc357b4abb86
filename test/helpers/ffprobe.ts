// ffprobe a media file and return its streams and format as parsed JSON.
import { execFile } from "node:child_process";
import { resolveFfprobe } from "../../src/bridges/ffmpeg-path.js";

export interface ProbeStream {
  index: number;
  codec_name?: string;
  codec_type?: "video" | "audio" | "data" | "subtitle" | string;
  profile?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  level?: number;
  sample_rate?: string;
  channels?: number;
  r_frame_rate?: string;
  avg_frame_rate?: string;
  time_base?: string;
  start_time?: string;
  /** Seconds as a decimal string; absent for some raw formats (Annex B H.264). */
  duration?: string;
  nb_frames?: string;
  /** From -count_frames: frames actually decoded. */
  nb_read_frames?: string;
  [key: string]: unknown;
}

export interface ProbeFormat {
  filename: string;
  format_name: string;
  duration?: string;
  size?: string;
  bit_rate?: string;
  nb_streams: number;
  [key: string]: unknown;
}

export interface ProbeResult {
  streams: ProbeStream[];
  format: ProbeFormat;
}

/**
 * `ffprobe -v error -show_streams -show_format -count_frames -of json <file>`. Rejects with
 * ffprobe's stderr when it fails (a file it cannot open is a test failure worth reading).
 */
export function probe(file: string, opts: { timeoutMs?: number; extraArgs?: string[] } = {}): Promise<ProbeResult> {
  const args = ["-v", "error", "-show_streams", "-show_format", "-count_frames", "-of", "json", ...(opts.extraArgs ?? []), file];
  return new Promise((resolve, reject) => {
    execFile(resolveFfprobe(), args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`ffprobe ${file} failed: ${(stderr || err.message).trim().slice(0, 2000)}`));
        return;
      }
      try {
        const parsed = JSON.parse(stdout) as Partial<ProbeResult>;
        resolve({ streams: parsed.streams ?? [], format: parsed.format ?? ({} as ProbeFormat) });
      } catch {
        reject(new Error(`ffprobe ${file} printed no JSON: ${stdout.slice(0, 500)}`));
      }
    });
  });
}

/** The first stream of a type, or throw naming what the file holds. */
export function streamOf(result: ProbeResult, type: "video" | "audio"): ProbeStream {
  const s = result.streams.find((x) => x.codec_type === type);
  if (!s) {
    const have = result.streams.map((x) => `${x.codec_type}:${x.codec_name}`).join(", ") || "no streams";
    throw new Error(`no ${type} stream in ${result.format.filename} (${have})`);
  }
  return s;
}

/** Duration in seconds: the stream's, else the container's; undefined when neither is known. */
export function durationSeconds(result: ProbeResult, stream?: ProbeStream): number | undefined {
  const d = Number(stream?.duration ?? result.format.duration);
  return Number.isFinite(d) ? d : undefined;
}
