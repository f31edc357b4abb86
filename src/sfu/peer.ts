import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RTCRtpHeaderExtensionParameters,
  useAbsSendTime,
  useRepairedRtpStreamId,
  useSdesMid,
  useSdesRTPStreamId,
  useTransportWideCC,
  type PeerConfig,
} from "werift";
import type { Config } from "../config.js";
import { mimeTypeOf } from "../media/codecs.js";
import { errors } from "./errors.js";
import { FORWARDED_BY_KIND } from "./extensions.js";
import { rewriteAnswerCandidates, type MediaKind, type SdpCodec } from "./sdp.js";
import { dropDefaultStunServer, guardDtlsHandshakes, onIncomingData } from "./werift-adapter.js";

/** The part of Config that shapes the server's own ICE agent. */
export type IceSettings = Pick<Config, "iceServers" | "iceAdditionalHosts" | "iceHosts" | "icePublicIps" | "icePortRange" | "iceTcp" | "iceGatherServers">;

const VIDEO_FEEDBACK = [
  { type: "nack" },
  { type: "nack", parameter: "pli" },
  { type: "ccm", parameter: "fir" },
  { type: "goog-remb" },
  { type: "transport-cc" },
];

/** werift codec parameters carrying exactly the offered codec (its payload type and fmtp). */
export function toWeriftCodec(kind: MediaKind, c: SdpCodec): RTCRtpCodecParameters {
  if (c.name.toLowerCase() === "rtx") {
    // RFC 4588 retransmissions of the codec its apt names; no feedback of its own.
    return new RTCRtpCodecParameters({ mimeType: `${kind}/rtx`, clockRate: c.clockRate, payloadType: c.payloadType, parameters: c.fmtp, rtcpFeedback: [] });
  }
  return new RTCRtpCodecParameters({
    mimeType: mimeTypeOf(kind, c.name),
    clockRate: c.clockRate,
    channels: kind === "audio" ? (c.channels ?? 2) : undefined,
    payloadType: c.payloadType,
    parameters: c.fmtp === "" ? undefined : c.fmtp,
    rtcpFeedback: kind === "video" ? VIDEO_FEEDBACK : [{ type: "transport-cc" }],
  });
}

/** The extensions carried from publishers to viewers (extensions.ts); werift numbers them. */
function forwarded(kind: MediaKind): RTCRtpHeaderExtensionParameters[] {
  return FORWARDED_BY_KIND[kind].map((uri) => new RTCRtpHeaderExtensionParameters({ uri }));
}

export interface PeerHandle {
  pc: RTCPeerConnection;
  /** performance.now() of the last packet (STUN, DTLS, SRTP, SRTCP) received from the remote. */
  lastSeen(): number;
}

export function createPeer(
  ice: IceSettings,
  codecs: { audio: RTCRtpCodecParameters[]; video: RTCRtpCodecParameters[] },
  /** Receiving simulcast: the rid extensions tell the layers apart (RFC 8852). */
  opts: { simulcast?: boolean } = {},
): PeerHandle {
  let seen = performance.now();
  const touch = (): void => {
    seen = performance.now();
  };
  const onlyHosts = ice.iceHosts;
  const pc = new RTCPeerConnection({
    codecs,
    headerExtensions: {
      video: [
        useSdesMid(),
        useAbsSendTime(),
        useTransportWideCC(),
        ...(opts.simulcast ? [useSdesRTPStreamId(), useRepairedRtpStreamId()] : []),
        ...forwarded("video"),
      ],
      audio: [useSdesMid(), useAbsSendTime(), useTransportWideCC(), ...forwarded("audio")],
    },
    // The server gathers host candidates only unless told otherwise: no outside STUN traffic.
    iceServers: ice.iceGatherServers ? ice.iceServers : [],
    iceAdditionalHostAddresses: ice.iceAdditionalHosts.length > 0 ? ice.iceAdditionalHosts : undefined,
    icePortRange: ice.icePortRange,
    iceUseTcp: ice.iceTcp,
    iceUseIpv6: onlyHosts.length === 0 || onlyHosts.some((h) => h.includes(":")),
    iceFilterStunResponse: () => {
      touch();
      return true;
    },
    iceFilterCandidatePair: onlyHosts.length > 0 ? (pair) => onlyHosts.includes(pair.localCandidate.host) : undefined,
    bundlePolicy: "max-bundle",
  } satisfies Partial<PeerConfig>);
  // Media and RTCP prove liveness as much as consent checks do (browsers send consent checks
  // only every few seconds).
  onIncomingData(pc, touch);
  guardDtlsHandshakes(pc);
  return { pc, lastSeen: () => seen };
}

/**
 * Sets a client's offer as the remote description. werift throws plain errors (TypeErrors too) on
 * offers it cannot read (a candidate line missing fields, no a=mid, no a=ice-ufrag, an m= line of
 * another kind, an empty c= line...): that is the client's invalid SDP (invalid_input), not a server error.
 */
export async function applyOffer(pc: RTCPeerConnection, sdp: string): Promise<void> {
  try {
    await pc.setRemoteDescription({ type: "offer", sdp });
  } catch {
    throw errors.invalidSdp();
  }
}

/**
 * Answers the offer set by applyOffer and returns the complete answer (every candidate inline, no
 * trickle needed), with the configured candidate address policy applied.
 */
export async function completeAnswer(pc: RTCPeerConnection, ice: IceSettings): Promise<string> {
  let local: Awaited<ReturnType<RTCPeerConnection["createAnswer"]>>;
  try {
    local = await pc.createAnswer();
  } catch {
    // An offer werift accepted but cannot answer (e.g. sections it could not bind to a mid).
    throw errors.invalidSdp();
  }
  // werift gives every ICE agent without a STUN server stun.l.google.com:19302, even with
  // iceServers []: each answer then waited on a DNS lookup and STUN query to the outside (up to
  // its 5 s gathering timeout where those go unanswered). Only a STUN server that is configured
  // and meant for the server's own ICE (ICE_GATHER_SERVERS) is queried.
  const ownStun = ice.iceGatherServers && ice.iceServers.some((s) => s.urls.some((u) => /^stuns?:/i.test(u)));
  if (!ownStun) dropDefaultStunServer(pc);
  await pc.setLocalDescription(local);
  if (pc.iceGatheringState !== "complete") {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      pc.iceGatheringStateChange.subscribe((state) => {
        if (state === "complete") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new Error("werift produced no local description");
  // werift ends its a=simulcast line with a space (RFC 8853's grammar has none there).
  const answer = rewriteAnswerCandidates(sdp, ice.iceHosts, ice.icePublicIps).replace(/^(a=simulcast:.*?) +\r$/gm, "$1\r");
  // werift swallows a failed bind (every port of ICE_PORT_RANGE taken) and answers without that
  // candidate; an answer with none at all can never connect.
  if (!/^a=candidate:/m.test(answer)) throw new NoCandidatesError();
  return answer;
}

/** No local ICE candidate could be gathered: out of media ports, or no usable address. */
export class NoCandidatesError extends Error {
  constructor() {
    super("no ICE candidate could be gathered");
    this.name = "NoCandidatesError";
  }
}
