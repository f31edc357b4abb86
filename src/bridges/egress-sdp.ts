// The SDP file an egress FFmpeg reads: one m= section per track on 127.0.0.1, with the
// publisher's own payload types, clock rates and fmtp, for the codecs FFmpeg can depacketize.

import { fail } from "../errors.js";
import type { PublishedTrack } from "../sfu/publisher.js";
import type { CodecName } from "../media/codecs.js";

/** Codecs FFmpeg 5.x can depacketize from RTP (no AV1 depacketizer before FFmpeg 7). */
export const EGRESS_CODECS: readonly CodecName[] = ["H264", "VP8", "VP9", "opus"];

export interface SdpTrack {
  kind: "audio" | "video";
  codecName: CodecName;
  payloadType: number;
  clockRate: number;
  channels?: number;
  fmtp: string;
  port: number;
}

/**
 * The SDP FFmpeg reads: one m= section per track on 127.0.0.1, the publisher's payload type,
 * `rtpmap` (Opus always `/48000/2`) and `fmtp` (H.264 packetization-mode, sprop-parameter-sets…).
 */
export function buildEgressSdp(name: string, tracks: SdpTrack[]): string {
  const lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", `s=${name.replace(/[^\x20-\x7e]/g, "")}`, "c=IN IP4 127.0.0.1", "t=0 0"];
  for (const t of tracks) {
    if (!EGRESS_CODECS.includes(t.codecName)) throw fail("unsupported_codec", `cannot bridge ${t.codecName}`);
    if (!Number.isInteger(t.payloadType) || t.payloadType < 0 || t.payloadType > 127) throw new Error(`bad payload type ${t.payloadType}`);
    if (!Number.isInteger(t.port) || t.port <= 0 || t.port > 65534) throw new Error(`bad port ${t.port}`);
    const clock = t.codecName === "opus" ? 48000 : t.clockRate || 90000;
    const rtpmap = t.codecName === "opus" ? `opus/48000/${t.channels === 1 ? 1 : 2}` : `${t.codecName}/${clock}`;
    lines.push(`m=${t.kind} ${t.port} RTP/AVP ${t.payloadType}`, `a=rtpmap:${t.payloadType} ${rtpmap}`);
    // The fmtp came from a parsed SDP line; keep it on one line whatever happens.
    const fmtp = t.fmtp.replace(/[\r\n]/g, "").trim();
    if (fmtp !== "") lines.push(`a=fmtp:${t.payloadType} ${fmtp}`);
    lines.push("a=recvonly");
  }
  return lines.join("\r\n") + "\r\n";
}

/** Whether this track can be bridged (FFmpeg can read its RTP). */
export function egressable(track: PublishedTrack): boolean {
  return EGRESS_CODECS.includes(track.codecName);
}
