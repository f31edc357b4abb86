// RFC 9725 §4.4 session PATCH through the wire: trickle, ICE restart with a new ETag, and the
// precondition rules, on a live werift publisher. (That media survives a restart is proven with
// Chromium in browser.test.ts: werift as a client does not resume its own checks after one.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type WhepClient } from "../helpers/whep-client.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";

const FRAG = "application/trickle-ice-sdpfrag";

describe("session PATCH", () => {
  let server: TestServer;
  let pub: WhipClient;
  let sub: WhepClient;
  let etag: string;
  beforeAll(async () => {
    server = await startServer();
    pub = (
      await publishTestStream(server.whipUrl("patch"), {
        video: { codec: "VP8" },
        audio: false,
        source: { width: 320, height: 240, bitrateKbps: 400, gop: 15 },
      })
    ).client;
    sub = (await playStream(server.whepUrl("patch"), { audio: false })).client;
    // The entity tag of the ICE session: the server's ICE ufrag, quoted (checked against the header below).
    etag = `"${/^a=ice-ufrag:(\S+)/m.exec(pub.answer ?? "")?.[1]}"`;
  });
  afterAll(async () => {
    await sub?.close();
    await pub?.close();
    await server?.close();
  });

  const patch = (headers: Record<string, string>, body: string) => fetch(pub.location!, { method: "PATCH", headers, body });

  it("the 201 carries the ETag of the ICE session", () => {
    expect(pub.etag).toBe(etag);
  });

  it("415 for another content type, 428 without If-Match, 412 for a stale one, 400 for garbage", async () => {
    expect((await patch({ "Content-Type": "application/sdp", "If-Match": etag }, "a=end-of-candidates\r\n")).status).toBe(415);
    const noMatch = await patch({ "Content-Type": FRAG }, "a=end-of-candidates\r\n");
    expect(noMatch.status).toBe(428);
    const stale = await patch({ "Content-Type": FRAG, "If-Match": '"stale"' }, "a=end-of-candidates\r\n");
    expect(stale.status).toBe(412);
    expect((await patch({ "Content-Type": FRAG, "If-Match": etag }, "not sdp\r\n")).status).toBe(400);
  });

  it("trickle with the current ETag answers 204", async () => {
    const frag = `a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n`;
    expect((await patch({ "Content-Type": FRAG, "If-Match": etag }, frag)).status).toBe(204);
  });

  it("an ICE restart answers 200 with new credentials, candidates and ETag; the old tag is then stale", async () => {
    const res = await patch({ "Content-Type": FRAG, "If-Match": "*" }, "a=ice-ufrag:newU\r\na=ice-pwd:newpasswordnewpassword12\r\n");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/trickle-ice-sdpfrag/);
    const newTag = res.headers.get("etag") ?? "";
    expect(newTag).toMatch(/^"[^"]+"$/);
    expect(newTag).not.toBe(etag);
    const body = await res.text();
    expect(body).toContain(`a=ice-ufrag:${newTag.slice(1, -1)}\r\n`);
    expect(body).toMatch(/^a=ice-pwd:\S{22,}\r$/m);
    expect(body).toMatch(/^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/m);
    expect(body).toMatch(/a=end-of-candidates\r\n$/);
    expect((await patch({ "Content-Type": FRAG, "If-Match": etag }, "a=end-of-candidates\r\n")).status).toBe(412);
    expect((await patch({ "Content-Type": FRAG, "If-Match": newTag }, "a=end-of-candidates\r\n")).status).toBe(204);
  });

  it("404 for an unknown session, 405 for other methods", async () => {
    const unknown = await fetch(`${server.url}/api/whip/session/nope`, { method: "PATCH", headers: { "Content-Type": FRAG, "If-Match": "*" }, body: "" });
    expect(unknown.status).toBe(404);
    const get = await fetch(pub.location!);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toContain("PATCH");
  });
});
