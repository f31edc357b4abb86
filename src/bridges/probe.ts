// What a source holds, asked of ffprobe under the source's own protocol whitelist and a time limit:
// which streams (an ingest maps only those that exist), whether its H.264 can be copied into a
// WebRTC room as it is, its duration and creation time (relay windows). Undefined fields = unknown.
import { execFile } from "node:child_process";
import { resolveFfprobe } from "./ffmpeg-path.js";

export interface MediaProbe {
  duration?: number;
  /** ms since the epoch, from the container's creation_time. */
  creationMs?: number;
  video?: { codec: string; profile?: string; bFrames: number };
  audio?: { codec: string };
}

interface ProbeJson {
  format?: { duration?: string; tags?: { creation_time?: string } };
  streams?: { codec_type?: string; codec_name?: string; profile?: string; has_b_frames?: number }[];
}

/** Resolves undefined when ffprobe cannot open the source in time. */
export function probeMedia(input: string, protocols: readonly string[], timeoutMs: number): Promise<MediaProbe | undefined> {
  const network = !input.startsWith("file:");
  return new Promise((resolve) => {
    execFile(
      resolveFfprobe(),
      [
        "-v",
        "error",
        "-protocol_whitelist",
        protocols.join(","),
        ...(network ? ["-rw_timeout", String(timeoutMs * 1000)] : []),
        "-show_entries",
        "format=duration:format_tags=creation_time:stream=codec_type,codec_name,profile,has_b_frames",
        "-of",
        "json",
        input,
      ],
      { timeout: timeoutMs, maxBuffer: 1 << 20, killSignal: "SIGKILL" },
      (err, stdout) => {
        if (err) return resolve(undefined);
        try {
          const j = JSON.parse(stdout) as ProbeJson;
          const duration = Number(j.format?.duration);
          const creation = j.format?.tags?.creation_time ? Date.parse(j.format.tags.creation_time) : NaN;
          const v = j.streams?.find((s) => s.codec_type === "video");
          const a = j.streams?.find((s) => s.codec_type === "audio");
          resolve({
            duration: Number.isFinite(duration) ? duration : undefined,
            creationMs: Number.isFinite(creation) ? creation : undefined,
            video: v ? { codec: v.codec_name ?? "", profile: v.profile, bFrames: v.has_b_frames ?? 0 } : undefined,
            audio: a ? { codec: a.codec_name ?? "" } : undefined,
          });
        } catch {
          resolve(undefined);
        }
      },
    );
  });
}

/** H.264 a browser gets as it is: Baseline without B-frames (what the room's SDP announces). */
export function copiesIntoRoom(p: MediaProbe | undefined): boolean {
  const v = p?.video;
  return v !== undefined && v.codec === "h264" && v.bFrames === 0 && /baseline/i.test(v.profile ?? "");
}
