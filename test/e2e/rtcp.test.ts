// RTCP the way players and encoders need it, through the wire: the server asks the publisher to
// resend what it lost (NACK), and subscribers get sender reports to keep audio and video in sync.
import { RtcpSrPacket } from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";
import { WhepClient } from "../helpers/whep-client.js";

describe("RTCP", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it("gaps in the publisher's stream are NACKed by the server", async () => {
    // werift's debug knob keeps a packet when loss/100 >= Math.random(): 97 means 3 % dropped.
    const { client } = await publishTestStream(server.whipUrl("lossy"), {
      video: { codec: "VP8" },
      audio: false,
      peerConfig: { debug: { outboundPacketLoss: 97 } },
    });
    try {
      await new Promise((r) => setTimeout(r, 3000));
      expect(client.nacks).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  }, 30_000);

  it("a publisher that offers RTX with its FID group gets it, and what it resends as RTX reaches viewers in place", async () => {
    const { client } = await publishTestStream(server.whipUrl("rtx-up"), {
      video: { codec: "VP8", rtx: true },
      audio: false,
      peerConfig: { debug: { outboundPacketLoss: 95 } },
    });
    const viewer = new WhepClient({ audio: false });
    try {
      expect(client.answer).toMatch(/^a=rtpmap:97 rtx\/90000\r?$/m);
      expect(client.answer).toMatch(/^a=fmtp:97 apt=96\r?$/m);
      await viewer.play(server.whepUrl("rtx-up"), {});
      await new Promise((r) => setTimeout(r, 4000));
      expect(client.nacks).toBeGreaterThan(0);
      const sender = client.sender("video") as unknown as { retransmittedPacketsSent?: number; rtxSsrc: number };
      expect(sender.retransmittedPacketsSent ?? 0).toBeGreaterThan(0);
      // The viewer loses nothing itself: its late packets are the publisher's RTX, unwrapped by the
      // server into the media stream and forwarded under their original sequence numbers.
      expect(viewer.video.reordered).toBeGreaterThan(0);
      expect(viewer.video.frames).toBeGreaterThan(10);
    } finally {
      await viewer.close();
      await client.close();
    }
  }, 30_000);

  it("subscribers receive sender reports for audio and video", async () => {
    let publisher: WhipClient | undefined;
    const viewer = new WhepClient({});
    try {
      publisher = (await publishTestStream(server.whipUrl("sr"), { video: { codec: "VP8" }, audio: true })).client;
      const srBySsrc = new Map<number, number>();
      await viewer.play(server.whepUrl("sr"), {});
      for (const r of viewer.pc.getReceivers()) {
        r.onRtcp.subscribe((p) => {
          if (p instanceof RtcpSrPacket) srBySsrc.set(p.ssrc, (srBySsrc.get(p.ssrc) ?? 0) + 1);
        });
      }
      await new Promise((r) => setTimeout(r, 4000));
      // One sender (SSRC) per forwarded track, each reporting.
      expect([...srBySsrc.keys()].length).toBe(2);
      for (const n of srBySsrc.values()) expect(n).toBeGreaterThanOrEqual(1);
    } finally {
      await viewer.close();
      await publisher?.close();
    }
  }, 30_000);

  it("a subscriber's NACKs are answered from the server's retransmission history", async () => {
    const { client: publisher } = await publishTestStream(server.whipUrl("resend"), { video: { codec: "VP8" }, audio: false });
    // 95 keeps 95 % (see above): the viewer loses 5 % and NACKs them.
    const viewer = new WhepClient({ audio: false, peerConfig: { debug: { inboundPacketLoss: 95 } } });
    try {
      await viewer.play(server.whepUrl("resend"), {});
      await new Promise((r) => setTimeout(r, 4000));
      // Loopback never reorders: a packet older than the newest one seen is a retransmission.
      expect(viewer.video.reordered).toBeGreaterThan(0);
    } finally {
      await viewer.close();
      await publisher.close();
    }
  }, 30_000);

  it("padding-only probes in the publisher's sequence space leave no hole at viewers, so nothing is NACKed in vain", async () => {
    // Chrome probes bandwidth this way when its WHIP session has no RTX; dropped without
    // renumbering, each probe was a gap the viewer NACKed forever and froze on until a keyframe.
    const { client: publisher } = await publishTestStream(server.whipUrl("probes"), { video: { codec: "VP8", paddingEvery: 7 }, audio: false });
    const viewer = new WhepClient({ audio: false });
    try {
      await viewer.play(server.whepUrl("probes"), {});
      const nacksBefore = await metric(server, "live_nack_requested_packets_total");
      await viewer.waitForPackets(300, "video", 15_000);
      expect(publisher.paddingSent).toBeGreaterThan(20);
      expect(viewer.video.sequenceGaps).toBe(0);
      expect(viewer.video.frames).toBeGreaterThan(10);
      expect((await metric(server, "live_nack_requested_packets_total")) - nacksBefore).toBe(0);
    } finally {
      await viewer.close();
      await publisher.close();
    }
  }, 30_000);

  it("a viewer that offers RTX gets it (FID group in the answer) and its NACKs are answered as RTX, which it unwraps", async () => {
    const { client: publisher } = await publishTestStream(server.whipUrl("rtx"), { video: { codec: "VP8" }, audio: false });
    const viewer = new WhepClient({ audio: false, rtx: true, video: ["VP8"], peerConfig: { debug: { inboundPacketLoss: 95 } } });
    try {
      const result = await viewer.play(server.whepUrl("rtx"), {});
      expect(result.answer).toMatch(/^a=rtpmap:97 rtx\/90000\r?$/m);
      expect(result.answer).toMatch(/^a=fmtp:97 apt=96\r?$/m);
      const fid = /^a=ssrc-group:FID (\d+) (\d+)\r?$/m.exec(result.answer);
      expect(fid).not.toBeNull();
      const before = await resentTotal(server);
      await new Promise((r) => setTimeout(r, 4000));
      // werift unwraps RTX into the original sequence numbers: late packets in the video track
      // can only have come as RTX, since nothing is sent again under the original SSRC.
      expect(viewer.video.reordered).toBeGreaterThan(0);
      expect((await resentTotal(server)) - before).toBeGreaterThan(0);
      // Packets arrived under the RTX SSRC of the FID group (werift counts a stream per SSRC before it unwraps).
      const receiver = viewer.pc.getTransceivers().find((t) => t.kind === "video")!.receiver as unknown as {
        remoteStreams: Record<number, { packets_received: number }>;
      };
      expect(receiver.remoteStreams[Number(fid![2])]?.packets_received ?? 0).toBeGreaterThan(0);
    } finally {
      await viewer.close();
      await publisher.close();
    }
  }, 30_000);
});

async function metric(server: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? 0);
}

const resentTotal = (server: TestServer) => metric(server, "live_retransmitted_packets_total");
