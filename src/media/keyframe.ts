import { av1StartsKeyframe } from "./av1.js";
import type { CodecName } from "./codecs.js";
import { h264StartsKeyframe } from "./h264.js";
import { vp8StartsKeyframe } from "./vp8.js";
import { vp9StartsKeyframe } from "./vp9.js";

/**
 * Whether this RTP payload starts a keyframe, i.e. a subscriber (or an egress, a recorder) waiting
 * for its first decodable picture may start with this very packet. Reads only the payload
 * descriptor or NAL header, through each codec's own module; on the forwarding path, so it
 * allocates nothing.
 */
export function startsKeyframe(codec: CodecName, p: Uint8Array): boolean {
  if (p.length === 0) return false;
  switch (codec) {
    case "VP8":
      return vp8StartsKeyframe(p);
    case "VP9":
      return vp9StartsKeyframe(p);
    case "H264":
      return h264StartsKeyframe(p);
    case "AV1":
      return av1StartsKeyframe(p);
    case "opus":
      return true;
  }
}
