// How an ingest's FFmpeg writes into a room: H.264 (Constrained Baseline, no B-frames: what every
// browser and werift viewer accepts; copied when the source already is that, else re-encoded) and
// Opus, as plain RTP to the loopback ports of the room's RtpSource. Pure: no processes, no disk.

import { randomInt } from "node:crypto";
import type { RtpTrackSpec } from "../sfu/rtp-source.js";
import type { IngestSource } from "./ingest-source.js";
import { whitelistArgs } from "./protocols.js";

export const VIDEO_PAYLOAD_TYPE = 96;
export const AUDIO_PAYLOAD_TYPE = 111;
/** Constrained Baseline 3.1: what -profile:v baseline produces and every WebRTC H.264 decoder takes. */
export const VIDEO_FMTP = "packetization-mode=1;profile-level-id=42e01f";

/** The tracks of every ingest room, in the order of RtpSource.ports. */
export const INGEST_TRACKS: readonly RtpTrackSpec[] = [
  { kind: "video", codec: { payloadType: VIDEO_PAYLOAD_TYPE, name: "H264", clockRate: 90000, fmtp: VIDEO_FMTP, rtcpFeedback: [] } },
  { kind: "audio", codec: { payloadType: AUDIO_PAYLOAD_TYPE, name: "opus", clockRate: 48000, channels: 2, fmtp: "", rtcpFeedback: [] } },
];

/** Network reads that block longer than this fail (and the job restarts): -rw_timeout, in µs. */
const RW_TIMEOUT_US = 10_000_000;
const PACKET_SIZE = 1200;
/** Keyframe interval of the re-encoded video (frames). */
const GOP = 30;

/** A random SSRC FFmpeg accepts (its -ssrc is a signed 32-bit integer). */
export function randomSsrc(): number {
  return randomInt(1, 0x7fffffff);
}

export interface IngestArgsOptions {
  source: IngestSource;
  loop: boolean;
  /** RtpSource.ports, in the order of `tracksFor(streams)`: video first when there is video. */
  ports: readonly number[];
  ssrcs: readonly [number, number];
  /** What the source holds (from ffprobe); both, re-encoded, when unknown. */
  streams?: IngestStreams;
}

/** The streams an ingest forwards, and whether its H.264 goes into the room as it is. */
export interface IngestStreams {
  video: boolean;
  audio: boolean;
  copyVideo: boolean;
}

/** Audio and video, re-encoded: what a source that could not be probed is taken to hold. */
export const BOTH_STREAMS: IngestStreams = { video: true, audio: true, copyVideo: false };

/** The room tracks of an ingest of these streams (RtpSource ports follow this order). */
export function tracksFor(streams: IngestStreams = BOTH_STREAMS): RtpTrackSpec[] {
  return INGEST_TRACKS.filter((t) => (t.kind === "video" ? streams.video : streams.audio));
}

export function rtpOutput(port: number): string[] {
  // RTCP to the RTP port itself (RtpSource drops it there); FFmpeg would otherwise send it to port+1.
  return [...whitelistArgs(["rtp", "udp"]), "-f", "rtp", `rtp://127.0.0.1:${port}?rtcpport=${port}&pkt_size=${PACKET_SIZE}`];
}

/** FFmpeg arguments of an ingest (after the supervisor's global ones; it adds the input whitelist). */
export function ingestArgs(o: IngestArgsOptions): string[] {
  const streams = o.streams ?? BOTH_STREAMS;
  const ports = [...o.ports];
  const videoPort = streams.video ? ports.shift() : undefined;
  const audioPort = streams.audio ? ports.shift() : undefined;
  if ((streams.video && videoPort === undefined) || (streams.audio && audioPort === undefined)) throw new Error("an ingest needs a port per stream");
  if (!streams.video && !streams.audio) throw new Error("an ingest needs a video or an audio stream");
  const input: string[] = [];
  // Files and VOD URLs are read at their own pace; live sources arrive in real time already.
  if (o.source.kind !== "rtmp") input.push("-re");
  if (o.loop) input.push("-stream_loop", "-1");
  if (o.source.kind !== "file") input.push("-rw_timeout", String(RW_TIMEOUT_US));
  const args = [...input, "-i", o.source.input];
  if (videoPort !== undefined) {
    args.push("-map", "0:v:0");
    if (streams.copyVideo) {
      // Baseline H.264 without B-frames is what the room announces: copied, no encoder in the way.
      // MP4/FLV carry SPS/PPS out of band; viewers need them in-band before every keyframe.
      args.push("-c:v", "copy", "-bsf:v", "h264_mp4toannexb,dump_extra=freq=keyframe");
    } else {
      // Re-encoded, so B-frames and high profiles never reach a WebRTC viewer, and keyframes come
      // every GOP frames (joiners get the room's GOP cache). At most 1280x720.
      args.push(
        "-vf",
        "scale=w='min(iw,1280)':h='min(ih,720)':force_original_aspect_ratio=decrease:force_divisible_by=2",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-profile:v",
        "baseline",
        "-bf",
        "0",
        "-g",
        String(GOP),
        "-keyint_min",
        String(GOP),
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-maxrate",
        "2500k",
        "-bufsize",
        "2500k",
      );
    }
    args.push("-payload_type", String(VIDEO_PAYLOAD_TYPE), "-ssrc", String(o.ssrcs[0]), ...rtpOutput(videoPort));
  }
  if (audioPort !== undefined) {
    // Audio: AAC (RTMP, HLS, MP4) or whatever it is, to Opus 48 kHz stereo.
    args.push("-map", "0:a:0", "-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "96k");
    args.push("-payload_type", String(AUDIO_PAYLOAD_TYPE), "-ssrc", String(o.ssrcs[1]), ...rtpOutput(audioPort));
  }
  return args;
}
