// Cases the fuzz suite found, kept as plain tests.
import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_MEDIA_SECTIONS, MAX_SDP_LINES, parseSdp, SdpError } from "../../src/sfu/sdp.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { CHROME_PLAY, CHROME_PUBLISH } from "./gen-sdp.js";

const post = (server: TestServer, path: string, body: string) =>
  fetch(server.url + path, { method: "POST", headers: { "Content-Type": "application/sdp" }, body });

describe("offers werift cannot read are 400 invalid SDP, not 500", () => {
  // Each of these made werift's setRemoteDescription (or createAnswer) throw a plain Error or a
  // TypeError, which the server answered with 500 internal server error.
  const broken: Record<string, (sdp: string) => string> = {
    "a candidate line missing fields (SDP does not have enough properties)": (s) => s.replace("a=mid:1\r\n", "a=mid:1\r\na=candidate:x\r\n"),
    "an empty c= line (ipAddressFromSdp: exception)": (s) => s.replace("c=IN IP4 0.0.0.0", "c="),
    "no a=ice-ufrag (reading 'iceParams')": (s) => s.replace(/a=ice-ufrag:.*\r\n/g, ""),
    "no a=mid (mid not assigned)": (s) => s.replace(/a=mid:.*\r\n/g, ""),
    "an m=text section (invalid media kind)": (s) => `${s}m=text 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=rtpmap:96 VP8/90000\r\n`,
    "an m=application section without a=sctp-port (sctpRemotePort not exist)": (s) => `${s}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n`,
  };

  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ LOG_LEVEL: "fatal" });
    expect((await post(server, "/api/whip/publish/has-publisher", CHROME_PUBLISH)).status).toBe(201);
  });
  afterAll(() => server.close());

  it.each(Object.entries(broken))("%s", async (_name, mutate) => {
    const whip = await post(server, "/api/whip/publish/broken", mutate(CHROME_PUBLISH));
    expect(whip.status).toBe(400);
    expect(await whip.json()).toEqual({ error: "invalid SDP" });
    const whep = await post(server, "/api/whep/play/has-publisher", mutate(CHROME_PLAY));
    expect(whep.status).toBe(400);
    expect(await whep.json()).toEqual({ error: "invalid SDP" });
    // The refused publisher left no room behind: a good offer publishes there now.
    const good = await post(server, "/api/whip/publish/broken", CHROME_PUBLISH);
    expect(good.status).toBe(201);
    expect((await fetch(server.url + good.headers.get("location"), { method: "DELETE" })).status).toBe(200);
  });
});

describe("the server's ICE agent queries no STUN server it was not given", () => {
  // werift falls back to stun.l.google.com:19302 when no STUN server is configured: every answer
  // waited on a DNS lookup and a STUN query to Google, up to 5 s where those go unanswered (1 in
  // ~40 answers took 5 s in the sandbox), and the server sent STUN traffic outside although
  // ICE_GATHER_SERVERS is off by default.
  const stunServersOf = (server: TestServer, kind: "whip" | "whep", location: string) => {
    const id = location.split("/").pop()!;
    const entry = server.core.rooms.session(kind, id);
    expect(entry).toBeDefined();
    return entry!.session.peer.pc.iceTransports.map((t) => t.connection.stunServer);
  };

  it("by default, and with ICE_SERVERS given to clients only", async () => {
    for (const env of [{}, { ICE_SERVERS: "stun:stun.example.com:3478" }] as Record<string, string>[]) {
      const server = await startServer({ ...env, LOG_LEVEL: "fatal" });
      try {
        const pub = await post(server, "/api/whip/publish/stun", CHROME_PUBLISH);
        expect(pub.status).toBe(201);
        const sub = await post(server, "/api/whep/play/stun", CHROME_PLAY);
        expect(sub.status).toBe(201);
        for (const [kind, res] of [["whip", pub], ["whep", sub]] as const) {
          const servers = stunServersOf(server, kind, res.headers.get("location")!);
          expect(servers.length).toBeGreaterThan(0);
          expect(servers).toEqual(servers.map(() => undefined));
        }
      } finally {
        await server.close();
      }
    }
  });

  it("with ICE_GATHER_SERVERS, the configured STUN server is queried", async () => {
    const stun = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => stun.bind(0, "127.0.0.1", resolve));
    let queries = 0;
    stun.on("message", (msg, from) => {
      queries++;
      // A Binding error response (0x0111) to the same transaction: gathering need not wait 5 s.
      if (msg.length >= 20) stun.send(Buffer.concat([Buffer.from([0x01, 0x11, 0, 0]), msg.subarray(4, 20)]), from.port, from.address);
    });
    const port = stun.address().port;
    const server = await startServer({ ICE_SERVERS: `stun:127.0.0.1:${port}`, ICE_GATHER_SERVERS: "true", LOG_LEVEL: "fatal" });
    try {
      const res = await post(server, "/api/whip/publish/stun", CHROME_PUBLISH);
      expect(res.status).toBe(201);
      expect(stunServersOf(server, "whip", res.headers.get("location")!)).toContainEqual(["127.0.0.1", port]);
      expect(queries).toBeGreaterThan(0);
    } finally {
      await server.close();
      stun.close();
    }
  }, 30_000);
});

describe("offers too large for werift to handle in time are 400 at once", () => {
  // A 140 KB WHEP offer whose video m= line was repeated 1,886 times (fuzz case whep:5697) kept
  // werift's setRemoteDescription busy for 20-35 s: the event loop stood still and every other
  // request of the server timed out. Thousands of repeated a=group lines cost seconds too.
  const repeatedMLine = (sdp: string, n: number) => {
    const m = /^m=video .*$/m.exec(sdp)![0];
    return sdp.replace(`${m}\r\n`, `${m}\r\n`.repeat(n));
  };

  it("parseSdp refuses more than MAX_SDP_LINES lines and more than MAX_MEDIA_SECTIONS m= sections", () => {
    expect(parseSdp(repeatedMLine(CHROME_PLAY, MAX_MEDIA_SECTIONS - 1)).media).toHaveLength(MAX_MEDIA_SECTIONS);
    expect(() => parseSdp(repeatedMLine(CHROME_PLAY, MAX_MEDIA_SECTIONS))).toThrow(SdpError);
    const lines = CHROME_PUBLISH.split("\r\n").length - 1;
    const padded = (n: number) => CHROME_PUBLISH.replace("a=mid:1\r\n", "a=mid:1\r\n" + "a=x-pad:1\r\n".repeat(n));
    expect(parseSdp(padded(MAX_SDP_LINES - lines)).lines).toHaveLength(MAX_SDP_LINES);
    expect(() => parseSdp(padded(MAX_SDP_LINES - lines + 1))).toThrow(SdpError);
  });

  it("1,886 m= sections or 5,000 a=group lines: 400 invalid SDP in well under a second, the server stays responsive", async () => {
    const server = await startServer({ LOG_LEVEL: "fatal" });
    try {
      expect((await post(server, "/api/whip/publish/big", CHROME_PUBLISH)).status).toBe(201);
      for (const [path, body] of [
        ["/api/whep/play/big", repeatedMLine(CHROME_PLAY, 1886)],
        ["/api/whip/publish/big2", CHROME_PUBLISH.replace("a=group:BUNDLE 0 1\r\n", "a=group:BUNDLE 0 1\r\n".repeat(5000))],
      ] as const) {
        const t0 = performance.now();
        const [res, health] = await Promise.all([post(server, path, body), fetch(`${server.url}/healthz`)]);
        expect(res.status).toBe(400);
        expect(await res.json()).toEqual({ error: "invalid SDP" });
        expect(health.status).toBe(200);
        expect(performance.now() - t0).toBeLessThan(1000);
      }
    } finally {
      await server.close();
    }
  });
});

describe("path parameters the router used to refuse itself", () => {
  // Room names of 101+ characters got fastify's 414 (maxParamLength 100) in fastify's own error
  // shape instead of the spec's 400 invalid room name; a broken %-escape got fastify's 400 body,
  // which echoes the path, instead of the spec's {"error": ...}.
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ LOG_LEVEL: "fatal", ADMIN_TOKEN: "admin" });
  });
  afterAll(() => server.close());

  it.each([65, 101, 1000, 8000])("a room name of %i characters is 400 invalid room name", async (n) => {
    for (const path of [`/api/whip/publish/${"a".repeat(n)}`, `/api/whep/play/${"a".repeat(n)}`]) {
      const res = await post(server, path, CHROME_PUBLISH);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: "invalid room name" });
    }
  });

  it.each(["%", "%zz", "a%e0%a4", "%c0%ae"])("a broken escape (%s) is 400 in the spec's error shape", async (raw) => {
    const res = await post(server, `/api/whip/publish/${raw}`, CHROME_PUBLISH);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "invalid URL" });
  });
});

describe("rtpmap lines werift would answer differently from what the server chose", () => {
  // Fuzz case whep:29120 (seed 2880007042): a second a=rtpmap:96 with a 300-digit clock rate. This
  // parser kept the last mapping (VP8/90000, which matched the publisher), werift the first, and
  // the 201 answer said "a=rtpmap:96 VP8/NaN".
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ LOG_LEVEL: "fatal" });
    expect((await post(server, "/api/whip/publish/pub", CHROME_PUBLISH)).status).toBe(201);
  });
  afterAll(() => server.close());

  const vp8 = /^a=rtpmap:96 VP8\/90000$/m;
  it.each([
    ["a payload type mapped twice", (s: string) => s.replace(vp8, `a=rtpmap:96 VP8/${"9".repeat(300)}\r\na=rtpmap:96 VP8/90000`)],
    ["the same mapping repeated", (s: string) => s.replace(vp8, "a=rtpmap:96 VP8/90000\r\na=rtpmap:96 VP8/90000")],
    ["an 11-digit clock rate", (s: string) => s.replace(vp8, "a=rtpmap:96 VP8/90000000000")],
    ["a 4-digit channel count", (s: string) => s.replace(/^a=rtpmap:111 opus\/48000\/2$/m, "a=rtpmap:111 opus/48000/2000")],
  ])("%s: 400 invalid SDP", async (_name, mutate) => {
    for (const [path, base] of [["/api/whep/play/pub", CHROME_PLAY], ["/api/whip/publish/other", CHROME_PUBLISH]] as const) {
      const offer = mutate(base);
      expect(offer).not.toBe(base);
      const res = await post(server, path, offer);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: "invalid SDP" });
    }
  });
});
