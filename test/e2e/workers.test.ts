// FORWARD_WORKERS: the server as `npm start` runs it, its viewers' packets protected and sent by
// worker processes from the viewers' own sockets. Proved through the wire: werift viewers decode
// from a keyframe, get their NACKs answered (as RTX), get the publisher's audio level under their
// own id; a killed worker ends only its viewers and is replaced; nothing outlives the server.
import { RTCRtpHeaderExtensionParameters, useAbsSendTime, useSdesMid } from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeForwarding } from "../../src/sfu/native.js";
import { launchChromium } from "../helpers/chromium.js";
import { installIceHelpers, type PageIceHelpers } from "../helpers/page-ice.js";
import { sleep, waitFor } from "../helpers/net.js";
import { fanoutWorkerPids, isRunning } from "../helpers/procfs.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServerProcess, type ServerProcess } from "../helpers/server-process.js";
import { WhepClient } from "../helpers/whep-client.js";
import { AUDIO_LEVEL_URI, publishTestStream, type WhipClient } from "../helpers/whip-client.js";

describe("fan-out worker processes (FORWARD_WORKERS=2)", () => {
  let server: ServerProcess;
  let publisher: WhipClient | undefined;
  const viewers: WhepClient[] = [];
  const whep = (room: string) => `${server.base}/api/whep/play/${room}`;
  const subscribers = async (room: string) =>
    ((await (await fetch(`${server.base}/api/rooms`)).json()) as { name: string; subscribers: number }[]).find((r) => r.name === room)?.subscribers ?? 0;

  beforeAll(async () => {
    server = await startServerProcess({ FORWARD_WORKERS: "2" });
    // Viewers that arrive before the workers have started are sent from the server process.
    for (let i = 0; i < 50 && !/^live_forward_workers 2$/m.test(await (await fetch(`${server.base}/metrics`)).text()); i++) await sleep(100);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(viewers.map((v) => v.close()));
    await publisher?.close();
    await server.kill();
  });

  it("viewers decode from a keyframe, NACKs are answered as RTX, audio level arrives under the viewer's id", async () => {
    const pids = fanoutWorkerPids(server.child.pid!);
    expect(pids).toHaveLength(2);
    publisher = (await publishTestStream(`${server.base}/api/whip/publish/w`, { video: { codec: "VP8" }, audio: true, audioLevel: true })).client;
    const plain = [new WhepClient({}), new WhepClient({})];
    const lossy = new WhepClient({ audio: false, rtx: true, video: ["VP8"], peerConfig: { debug: { inboundPacketLoss: 95 } } });
    const leveled = new WhepClient({
      video: false,
      peerConfig: { headerExtensions: { audio: [new RTCRtpHeaderExtensionParameters({ uri: AUDIO_LEVEL_URI }), useSdesMid(), useAbsSendTime()], video: [] } },
    });
    viewers.push(...plain, lossy, leveled);
    const levels: number[] = [];
    leveled.pc.onTrack.subscribe((t) =>
      t.onReceiveRtp.subscribe((rtp) => {
        const e = rtp.header.extensions.find((x) => x.id === 1);
        if (e) levels.push(e.payload[0]!);
      }),
    );
    for (const v of [...plain, lossy, leveled]) await v.play(whep("w"), {});
    await Promise.all([...plain, lossy].map((v) => v.waitForFrames(60, 15_000)));
    await sleep(2000);
    for (const v of plain) expect(v.video.firstFrameWasKeyframe).toBe(true);
    // (The lossy viewer may lose the keyframe's first packet itself: only its frames are checked.)
    for (const v of [...plain, lossy]) expect(v.video.frames).toBeGreaterThan(60);
    for (const v of plain) expect(v.audio.frames).toBeGreaterThan(50);
    // Late packets at a viewer that loses 5 %: its NACKs answered by the worker from its history.
    expect(lossy.video.reordered).toBeGreaterThan(0);
    expect(levels.length).toBeGreaterThan(50);
    expect(levels.every((l) => (l & 0x80) === 0x80)).toBe(true);
    // The same worker processes, still two, sent all of it, through the addon where it is built.
    expect(fanoutWorkerPids(server.child.pid!)).toEqual(pids);
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^live_forward_path\\{path="${nativeForwarding.addon ? "native" : "fast"}"\\} 1$`, "m"));
  }, 60_000);

  it("a killed worker ends only its own viewers, is replaced, and new viewers are served", async () => {
    const before = fanoutWorkerPids(server.child.pid!);
    const count = await subscribers("w");
    expect(count).toBe(4);
    process.kill(before[0]!, "SIGKILL");
    // Viewers are spread over both workers, so some (not all) of them are ended.
    let left = count;
    for (let i = 0; i < 40 && left === count; i++) {
      await sleep(250);
      left = await subscribers("w");
    }
    expect(left).toBeLessThan(count);
    expect(left).toBeGreaterThan(0);
    await waitFor(() => fanoutWorkerPids(server.child.pid!).length === 2 && !fanoutWorkerPids(server.child.pid!).includes(before[0]!), {
      timeoutMs: 10_000,
      what: "a replacement worker",
    });
    const late = new WhepClient({ audio: false });
    viewers.push(late);
    await late.play(whep("w"), {});
    await late.waitForFrames(30, 15_000);
    expect(late.video.firstFrameWasKeyframe).toBe(true);
    expect(server.stdout()).toContain("fan-out worker exited");
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    expect(metrics).toMatch(/^live_forward_workers 2$/m);
    expect(metrics).toMatch(/^live_forward_worker_restarts_total 1$/m);
  }, 60_000);

  it.skipIf(!requireOrSkip("chromium").ok)(
    "a Chromium viewer's ICE restart (PATCH If-Match: *) keeps frames coming from its worker",
    async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        await page.goto(`${server.base}/healthz`);
        // A bare WHEP client in the page: play, restart ICE through PATCH (RFC 9725 §4.4.2), play on.
        await page.evaluate(installIceHelpers);
        const result = await page.evaluate(async (url) => {
          const { __gathered: gathered, __iceRestart: iceRestart } = window as unknown as PageIceHelpers;
          const frames = async (pc: RTCPeerConnection) => {
            let decoded = 0;
            (await pc.getStats()).forEach((s) => {
              if (s.type === "inbound-rtp" && s.kind === "video") decoded = s.framesDecoded ?? 0;
            });
            return decoded;
          };
          const pc = new RTCPeerConnection();
          pc.addTransceiver("video", { direction: "recvonly" });
          await pc.setLocalDescription(await pc.createOffer());
          await gathered(pc);
          const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription?.sdp });
          const location = new URL(res.headers.get("location") ?? "", url).toString();
          await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
          await new Promise((r) => setTimeout(r, 2500));
          const before = await frames(pc);
          const restart = await iceRestart(pc, location);
          await new Promise((r) => setTimeout(r, 1500));
          const restarted = await frames(pc);
          await new Promise((r) => setTimeout(r, 2000));
          const after = await frames(pc);
          await fetch(location, { method: "DELETE" });
          pc.close();
          return { status: restart.status, before, restarted, after };
        }, whep("w"));
        expect(result.status).toBe(200);
        expect(result.before).toBeGreaterThan(20);
        expect(result.after - result.restarted, "frames decoded in the 2 s after the restart").toBeGreaterThan(20);
      } finally {
        await browser.close();
      }
    },
    60_000,
  );

  it("SIGTERM ends the workers with the server", async () => {
    const pids = fanoutWorkerPids(server.child.pid!);
    expect(pids).toHaveLength(2);
    const exited = new Promise<number | null>((resolve) => server.child.once("exit", (code) => resolve(code)));
    server.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    await waitFor(() => pids.every((p) => !isRunning(p)), { timeoutMs: 5000, what: "the workers to exit" });
  }, 30_000);
});
