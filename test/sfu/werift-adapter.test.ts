// The werift internals the SFU reaches for, checked on two werift peers connected on loopback (no
// server): after a werift upgrade this says first which of them moved.
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtcpSrPacket,
  RtpHeader,
  RtpPacket,
  useSdesMid,
  useTransportWideCC,
  type RTCRtpTransceiver,
} from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SrtpProtector } from "../../src/sfu/srtp.js";
import {
  dropDefaultStunServer,
  incomingRtp,
  localSrtpKeys,
  nominatedPath,
  onIncomingData,
  rtxOf,
  setSenderReport,
  startSenderReports,
  takeOverTransportFeedback,
  weriftProtect,
} from "../../src/sfu/werift-adapter.js";
import { loopbackPeerConfig, waitFor } from "../helpers/net.js";
import { gatherOffer, waitConnected, waitGathered } from "../helpers/whip-client.js";

const TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

function peer(): RTCPeerConnection {
  return new RTCPeerConnection({
    ...loopbackPeerConfig(),
    bundlePolicy: "max-bundle",
    codecs: {
      video: [
        new RTCRtpCodecParameters({ mimeType: "video/VP8", clockRate: 90000, payloadType: 96, rtcpFeedback: [{ type: "nack" }, { type: "transport-cc" }] }),
        new RTCRtpCodecParameters({ mimeType: "video/rtx", clockRate: 90000, payloadType: 97, parameters: "apt=96" }),
      ],
      audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2, payloadType: 111, rtcpFeedback: [{ type: "transport-cc" }] })],
    },
    headerExtensions: { video: [useSdesMid(), useTransportWideCC()], audio: [useSdesMid(), useTransportWideCC()] },
  });
}

describe("werift adapter", () => {
  // The client sends video (written by its track) and audio (never written: sender reports only).
  const client = peer();
  const server = peer();
  const videoTrack = new MediaStreamTrack({ kind: "video" });
  let video: RTCRtpTransceiver;
  let audio: RTCRtpTransceiver;
  const tapped = new Set<number>();
  let feedback: ReturnType<typeof takeOverTransportFeedback>;
  let incomingData = 0;
  let stunBefore: unknown[] = [];

  beforeAll(async () => {
    video = client.addTransceiver(videoTrack, { direction: "sendonly" });
    audio = client.addTransceiver("audio", { direction: "sendonly" });
    const offer = await gatherOffer(client);
    await server.setRemoteDescription({ type: "offer", sdp: offer });
    onIncomingData(server, () => incomingData++);
    incomingRtp(server)?.tap((packet) => tapped.add(packet.header.ssrc));
    feedback = takeOverTransportFeedback(server);
    const answer = await server.createAnswer();
    stunBefore = server.iceTransports.map((t) => t.connection.stunServer);
    dropDefaultStunServer(server);
    await server.setLocalDescription(answer);
    await waitGathered(server);
    await client.setRemoteDescription({ type: "answer", sdp: server.localDescription!.sdp });
    await Promise.all([waitConnected(client), waitConnected(server)]);
  }, 20_000);

  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it("reads the router: negotiated extension ids, routed SSRCs, and taps every packet before routing", async () => {
    const rtp = incomingRtp(server);
    expect(rtp, "RTCPeerConnection's private router").toBeDefined();
    expect(rtp!.extensionId(TRANSPORT_CC)).toBeGreaterThan(0);
    for (let seq = 0; seq < 20; seq++) {
      videoTrack.writeRtp(new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: seq, timestamp: seq * 3000, marker: true }), Buffer.alloc(100, 1)));
    }
    await waitFor(() => tapped.has(video.sender.ssrc), { timeoutMs: 5000, what: "the video SSRC at the tap" });
    expect(rtp!.isRouted(video.sender.ssrc)).toBe(true);
    expect(rtp!.isRouted(0x0badf00d)).toBe(false);
  });

  it("takes transport-wide feedback from werift's receivers and sends it once DTLS is up", () => {
    expect(feedback).toBeDefined();
    for (const t of server.getTransceivers()) expect(t.receiver.receiverTWCC).toBeUndefined();
    expect(feedback!()).toBeTypeOf("function");
  });

  it("sees every datagram ICE receives, and drops werift's default STUN server", () => {
    expect(incomingData).toBeGreaterThan(0);
    expect(
      stunBefore.some((s) => s !== undefined),
      "werift still sets a default STUN server",
    ).toBe(true);
    expect(server.iceTransports.map((t) => t.connection.stunServer)).toEqual(server.iceTransports.map(() => undefined));
  });

  it("reads the sender's RTX stream, the SRTP keys and the nominated UDP path", () => {
    expect(rtxOf(video.sender)).toEqual({ payloadType: 97, ssrc: video.sender.rtxSsrc });
    const dtls = video.sender.dtlsTransport;
    const keys = localSrtpKeys(dtls);
    expect([0x0001, 0x0007]).toContain(keys.profile);
    expect(keys.srtpSessionKey).toHaveLength(16);
    const path = nominatedPath(dtls);
    const now = path();
    expect(now?.address).toBe("127.0.0.1");
    expect(now?.port).toBeGreaterThan(0);
    expect(now?.socket, "the nominated pair's UDP socket").toBeDefined();
    expect(path()).toBe(now);
  });

  it("encrypts with werift's SRTP exactly as SrtpProtector does", () => {
    const dtls = video.sender.dtlsTransport;
    const h = { payloadType: 96, marker: true, sequenceNumber: 7, timestamp: 1234, ssrc: 0x01020304 };
    const payload = Buffer.alloc(50, 2);
    const ours = new SrtpProtector(localSrtpKeys(dtls)).protect(h, payload);
    expect(weriftProtect(dtls)(h, payload, Buffer.alloc(0), 0).equals(ours)).toBe(true);
  });

  it("sender reports carry the fields set for a sender werift does not send for", async () => {
    const reports: RtcpSrPacket[] = [];
    for (const t of server.getTransceivers()) t.receiver.onRtcp.subscribe((p) => p instanceof RtcpSrPacket && reports.push(p));
    setSenderReport(audio.sender, (3_900_000_000n << 32n) | 5n, 777_000, 42, 4200);
    startSenderReports(audio.sender);
    await waitFor(() => reports.some((r) => r.ssrc === audio.sender.ssrc), { timeoutMs: 5000, what: "a sender report for audio" });
    const info = reports.find((r) => r.ssrc === audio.sender.ssrc)!.senderInfo;
    expect(info.rtpTimestamp).toBe(777_000);
    expect(info.packetCount).toBe(42);
    expect(info.octetCount).toBe(4200);
    expect(info.ntpTimestamp).toBe((3_900_000_000n << 32n) | 5n);
  });
});
