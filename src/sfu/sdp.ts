// A small, strict reader of SDP offers: enough to validate what a WHIP/WHEP client sent, to see
// which codecs it can carry, and to narrow an offer so werift answers with exactly the codec the
// room forwards (werift picks the first entry of a MIME type on its own, whatever profile).

import { canonicalName, type CodecName } from "../media/codecs.js";

export type MediaKind = "audio" | "video";

export interface SdpCodec {
  payloadType: number;
  /** Encoding name as written in the offer (e.g. "H264", "VP8", "opus"). */
  name: string;
  clockRate: number;
  channels?: number;
  /** Raw fmtp parameter string, "" when absent. */
  fmtp: string;
  rtcpFeedback: { type: string; parameter?: string }[];
}

export interface SdpMedia {
  kind: string;
  port: number;
  proto: string;
  formats: string[];
  mid?: string;
  direction: "sendrecv" | "sendonly" | "recvonly" | "inactive";
  codecs: SdpCodec[];
  /** Simulcast layers the client sends (`a=rid:<id> send`, RFC 8851), in offer order. */
  rids: string[];
  /** `a=ssrc-group:FID`: the client names the SSRC its RTX retransmissions come from (RFC 4588). */
  rtxSsrcGroup: boolean;
  /** `a=bundle-only` (JSEP §5.2.1): port 0 then means "bundled with the first section", not rejected. */
  bundleOnly: boolean;
  /** Line indexes [start, end) of this section in the session's line array. */
  start: number;
  end: number;
}

export interface ParsedSdp {
  lines: string[];
  media: SdpMedia[];
}

export class SdpError extends Error {}

const M_LINE = /^m=([a-z]+) (\d+)(?:\/\d+)? ([A-Za-z0-9/_.-]+)((?: [A-Za-z0-9_.-]+)+)$/;

/**
 * Offers of real clients have under 200 lines and a few m= sections. werift's handling of an offer
 * grows faster than linearly with both (1,900 m= sections in 140 KB held the event loop for 30 s;
 * thousands of repeated a=group or a=ssrc lines, seconds), so larger offers are invalid here.
 */
export const MAX_SDP_LINES = 1000;
export const MAX_MEDIA_SECTIONS = 32;

/** Parses an SDP offer, throwing SdpError on anything that is not a usable offer with an m= line. */
export function parseSdp(text: string): ParsedSdp {
  if (text.includes("\0")) throw new SdpError("NUL byte in SDP");
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0 || lines[0] !== "v=0") throw new SdpError("SDP must start with v=0");
  if (lines.length > MAX_SDP_LINES) throw new SdpError(`more than ${MAX_SDP_LINES} lines`);
  const media: SdpMedia[] = [];
  let current: SdpMedia | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.length < 2 || line[1] !== "=" || !/^[a-z]$/.test(line[0])) {
      throw new SdpError(`malformed line ${i + 1}`);
    }
    if (line.startsWith("m=")) {
      const m = M_LINE.exec(line);
      if (!m) throw new SdpError(`malformed m= line ${i + 1}`);
      if (media.length >= MAX_MEDIA_SECTIONS) throw new SdpError(`more than ${MAX_MEDIA_SECTIONS} m= sections`);
      if (current) current.end = i;
      current = {
        kind: m[1],
        port: Number(m[2]),
        proto: m[3],
        formats: m[4].trim().split(" "),
        direction: "sendrecv",
        codecs: [],
        rids: [],
        rtxSsrcGroup: false,
        bundleOnly: false,
        start: i,
        end: lines.length,
      };
      if (current.port > 65535) throw new SdpError(`bad port on line ${i + 1}`);
      media.push(current);
      continue;
    }
    if (!current || !line.startsWith("a=")) continue;
    const attr = line.slice(2);
    const colon = attr.indexOf(":");
    const name = colon < 0 ? attr : attr.slice(0, colon);
    const value = colon < 0 ? "" : attr.slice(colon + 1);
    switch (name) {
      case "mid":
        current.mid = value;
        break;
      case "sendrecv":
      case "sendonly":
      case "recvonly":
      case "inactive":
        current.direction = name;
        break;
      case "rid":
        {
          const rid = /^([A-Za-z0-9_-]+) send(?: |$)/.exec(value);
          if (rid && !current.rids.includes(rid[1]!)) current.rids.push(rid[1]!);
        }
        break;
      case "bundle-only":
        current.bundleOnly = true;
        break;
      case "ssrc-group":
        if (/^FID \d+ \d+$/.test(value)) current.rtxSsrcGroup = true;
        break;
      case "rtpmap": {
        // A clock rate past 10 digits is no number werift can write back (it answered "VP8/NaN").
        const m = /^(\d{1,3}) ([A-Za-z0-9_.-]+)\/(\d{1,10})(?:\/(\d{1,3}))?$/.exec(value);
        if (!m) throw new SdpError(`malformed rtpmap on line ${i + 1}`);
        const pt = Number(m[1]);
        if (pt > 127) throw new SdpError(`payload type out of range on line ${i + 1}`);
        const codec = codecFor(current, pt);
        // werift takes a payload type's first rtpmap, this parser took the last: one only.
        if (codec.name !== "") throw new SdpError(`payload type ${pt} mapped twice on line ${i + 1}`);
        codec.name = m[2];
        codec.clockRate = Number(m[3]);
        if (m[4] !== undefined) codec.channels = Number(m[4]);
        break;
      }
      case "fmtp": {
        const m = /^(\d{1,3}) (.*)$/.exec(value);
        if (!m) break;
        codecFor(current, Number(m[1])).fmtp = m[2].trim();
        break;
      }
      case "rtcp-fb": {
        const m = /^(\d{1,3}|\*) ([A-Za-z0-9_-]+)(?: (.+))?$/.exec(value);
        if (!m || m[1] === "*") break;
        codecFor(current, Number(m[1])).rtcpFeedback.push(m[3] ? { type: m[2], parameter: m[3] } : { type: m[2] });
        break;
      }
    }
  }
  if (media.length === 0) throw new SdpError("no m= line");
  for (const m of media) {
    // Codecs named only by fmtp/rtcp-fb without an rtpmap are unusable unless static (0-95).
    // The m= line's order is the client's preference, not the order its attribute lines come in
    // (Firefox writes every a=fmtp before the first a=rtpmap).
    const rank = (c: SdpCodec) => m.formats.indexOf(String(c.payloadType));
    m.codecs = m.codecs.filter((c) => c.name !== "" && rank(c) >= 0).sort((a, b) => rank(a) - rank(b));
  }
  return { lines, media };
}

function codecFor(media: SdpMedia, pt: number): SdpCodec {
  let c = media.codecs.find((x) => x.payloadType === pt);
  if (!c) {
    c = { payloadType: pt, name: "", clockRate: 0, fmtp: "", rtcpFeedback: [] };
    media.codecs.push(c);
  }
  return c;
}

export function fmtpParams(fmtp: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of fmtp.split(";")) {
    const p = part.trim();
    if (p === "") continue;
    const eq = p.indexOf("=");
    if (eq < 0) out.set(p.toLowerCase(), "");
    else out.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim());
  }
  return out;
}

/**
 * The audio/video sections a session would actually use (port 0 = rejected unless bundle-only,
 * data channels ignored).
 */
export function usableMedia(sdp: ParsedSdp): SdpMedia[] {
  return sdp.media.filter((m) => (m.kind === "audio" || m.kind === "video") && (m.port !== 0 || m.bundleOnly) && m.proto.includes("RTP"));
}

// ---- codec identity -------------------------------------------------------------------------

export const FORWARDABLE: Record<MediaKind, CodecName[]> = {
  video: ["VP8", "H264", "VP9", "AV1"],
  audio: ["opus"],
};

/**
 * H.264 profile from profile-level-id (RFC 6184 §8.1, as browsers interpret it): the level is
 * not part of the identity, the profile_idc and the constraint flags that select a profile are.
 */
export function h264Profile(fmtp: string): string {
  const plid = fmtpParams(fmtp).get("profile-level-id") ?? "42001f";
  if (!/^[0-9a-fA-F]{6}$/.test(plid)) return "invalid";
  const idc = parseInt(plid.slice(0, 2), 16);
  const iop = parseInt(plid.slice(2, 4), 16);
  switch (idc) {
    case 0x42:
      return iop & 0x40 ? "constrained-baseline" : "baseline";
    case 0x4d:
      return iop & 0x80 ? "constrained-baseline" : "main";
    case 0x58:
      return (iop & 0xc0) === 0xc0 ? "constrained-baseline" : iop & 0x80 ? "baseline" : "extended";
    case 0x64:
      return (iop & 0x0c) === 0x0c ? "constrained-high" : "high";
    case 0xf4:
      return "high-444";
    default:
      return `idc-${idc}`;
  }
}

export function h264PacketizationMode(fmtp: string): string {
  return fmtpParams(fmtp).get("packetization-mode") ?? "0";
}

export function vp9ProfileId(fmtp: string): string {
  return fmtpParams(fmtp).get("profile-id") ?? "0";
}

export function av1Profile(fmtp: string): string {
  return fmtpParams(fmtp).get("profile") ?? "0";
}

/** Whether a receiver offering `candidate` can decode what `source` produces. */
export function codecMatches(source: SdpCodec, candidate: SdpCodec): boolean {
  const a = canonicalName(source.name);
  if (!a || a !== canonicalName(candidate.name) || source.clockRate !== candidate.clockRate) return false;
  switch (a) {
    case "H264":
      return h264Profile(source.fmtp) === h264Profile(candidate.fmtp) && h264PacketizationMode(source.fmtp) === h264PacketizationMode(candidate.fmtp);
    case "VP9":
      return vp9ProfileId(source.fmtp) === vp9ProfileId(candidate.fmtp);
    case "AV1":
      return av1Profile(source.fmtp) === av1Profile(candidate.fmtp);
    default:
      return true;
  }
}

/** A human-readable codec description for error messages, e.g. "H264 (profile-level-id=640c1f, packetization-mode=1)". */
export function describeCodec(c: SdpCodec): string {
  const name = canonicalName(c.name) ?? c.name;
  if (name === "H264") {
    const p = fmtpParams(c.fmtp);
    return `H264 (profile-level-id=${p.get("profile-level-id") ?? "42001f"}, packetization-mode=${p.get("packetization-mode") ?? "0"})`;
  }
  if (name === "VP9") return `VP9 (profile-id=${vp9ProfileId(c.fmtp)})`;
  return name;
}

export function rtxFor(media: SdpMedia, pt: number): SdpCodec | undefined {
  return media.codecs.find((c) => c.name.toLowerCase() === "rtx" && fmtpParams(c.fmtp).get("apt") === String(pt));
}

/**
 * Rewrites the `keep` m-sections of the offer so that only their listed payload types remain
 * (with their rtpmap/fmtp/rtcp-fb lines). werift then has exactly one choice per MIME type.
 *
 * In those sections it also:
 * - keeps `a=rid` lines as `a=rid:<id> send`: werift reads everything after the id as the
 *   direction, so restrictions (`pt=`, `max-width=`) would turn into a wrong direction in the
 *   answer; the payload types they name may be gone anyway.
 * - turns a bundle-only section (port 0 + `a=bundle-only`, Firefox with max-bundle) into an
 *   ordinary bundled one on port 9: werift treats every port-0 section as rejected.
 * - drops an `a=extmap` whose id an earlier kept section already gave another URI (aiortc numbers
 *   its extensions per section). werift answers each section's ids as offered but parses every
 *   packet of the peer with one id→URI map, so both would be negotiated and one section's
 *   extensions misread (a 2-byte transport-cc read as 3-byte abs-send-time throws and werift
 *   drops the packet). Without the later one negotiated, the client does not send it there.
 */
export function narrowOffer(sdp: ParsedSdp, keep: Map<SdpMedia, number[]>): string {
  const out: string[] = [];
  const extUri = new Map<string, string>();
  let section: SdpMedia | undefined;
  for (let i = 0; i < sdp.lines.length; i++) {
    const line = sdp.lines[i];
    if (line.startsWith("m=")) section = sdp.media.find((m) => m.start === i);
    const kept = section ? keep.get(section) : undefined;
    if (!kept || !section) {
      out.push(line);
      continue;
    }
    if (i === section.start) {
      const head = line.split(" ").slice(0, 3);
      if (section.port === 0 && section.bundleOnly) head[1] = "9";
      out.push([...head, ...kept.map(String)].join(" "));
      continue;
    }
    const m = /^a=(rtpmap|fmtp|rtcp-fb):(\d{1,3}) /.exec(line);
    if (m && !kept.includes(Number(m[2]))) continue;
    if (line === "a=bundle-only") continue;
    const rid = /^a=rid:([A-Za-z0-9_-]+) send(?: |$)/.exec(line);
    if (rid) {
      out.push(`a=rid:${rid[1]} send`);
      continue;
    }
    if (line.startsWith("a=rid:")) continue; // a recv rid means nothing in an offer to a receiver
    const ext = /^a=extmap:(\d+)(?:\/\S+)? (\S+)/.exec(line);
    if (ext) {
      const known = extUri.get(ext[1]);
      if (known !== undefined && known !== ext[2]) continue;
      extUri.set(ext[1], ext[2]);
    }
    out.push(line);
  }
  return out.join("\r\n") + "\r\n";
}

// ---- candidates in answers ------------------------------------------------------------------

const CANDIDATE_RE = /^a=candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ (\S+)(.*)$/;

/**
 * Applies the ICE address policy to an answer: keep only candidates on `onlyHosts` (when given)
 * and add a copy of each host candidate for every public 1:1-NAT address.
 */
export function rewriteAnswerCandidates(answer: string, onlyHosts: string[], publicIps: string[]): string {
  if (onlyHosts.length === 0 && publicIps.length === 0) return answer;
  const out: string[] = [];
  for (const line of answer.split(/\r?\n/)) {
    const m = CANDIDATE_RE.exec(line);
    if (!m) {
      if (line !== "") out.push(line);
      continue;
    }
    const [, foundation, component, transport, priority, address, port, type, rest] = m;
    if (onlyHosts.length > 0 && !onlyHosts.includes(address)) continue;
    out.push(line);
    if (type === "host") {
      publicIps.forEach((ip, n) => {
        // A slightly lower priority keeps the real host address preferred where it is reachable.
        const prio = Math.max(1, Number(priority) - 1 - n);
        out.push(`a=candidate:${foundation}${n + 1} ${component} ${transport} ${prio} ${ip} ${port} typ host${rest}`);
      });
    }
  }
  return out.join("\r\n") + "\r\n";
}
