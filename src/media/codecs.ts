// Codec identity: the one spelling of each codec the server handles, and what follows from the
// name alone (the MIME type negotiated for it, the containers a recording of it is written in).
// SDP, the forwarding path, the recorder and the bridges all name codecs through this module.
import type { IvfFourcc } from "./ivf.js";

/** The codecs the server forwards, spelled as RTP encoding names (RFC 7741, 9628, 6184, 7587). */
export type CodecName = "VP8" | "VP9" | "H264" | "AV1" | "opus";

/**
 * The canonical name of an SDP encoding name or a MIME type, whatever its case ("vp8", "H264",
 * "video/VP9", "OPUS", "audio/opus"; "AV1X", the name of the draft AV1 payload format, is AV1);
 * undefined for any other codec.
 */
export function canonicalName(name: string): CodecName | undefined {
  switch (name.replace(/^(audio|video)\//i, "").toUpperCase()) {
    case "VP8":
      return "VP8";
    case "VP9":
      return "VP9";
    case "H264":
      return "H264";
    case "AV1":
    case "AV1X":
      return "AV1";
    case "OPUS":
      return "opus";
    default:
      return undefined;
  }
}

/** The MIME type of a codec as a WebRTC stack negotiates it; a codec not known here is upper-cased. */
export function mimeTypeOf(kind: "audio" | "video", name: string): string {
  return `${kind}/${canonicalName(name) ?? name.toUpperCase()}`;
}

/** The file a recorded track of each codec becomes (docs/media.md, "Recording formats"). */
export type TrackContainer = { extension: "ivf"; fourcc: IvfFourcc } | { extension: "h264" } | { extension: "ogg" };

export const TRACK_CONTAINERS: Readonly<Record<CodecName, TrackContainer>> = {
  VP8: { extension: "ivf", fourcc: "VP80" },
  VP9: { extension: "ivf", fourcc: "VP90" },
  AV1: { extension: "ivf", fourcc: "AV01" },
  H264: { extension: "h264" },
  opus: { extension: "ogg" },
};

export type PlaybackContainer = "webm" | "mp4";

/** The container a session is merged into for playback: browsers play H.264 in MP4, not in WebM. */
export function playbackContainerOf(videoCodec: CodecName | undefined): PlaybackContainer {
  return videoCodec === "H264" ? "mp4" : "webm";
}
