// RFC 9725 §4.4 session PATCH through the wire: trickle, ICE restart with a new ETag, and the
// precondition rules, on a live werift publisher whose media must survive the restart.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";
import { WhepSubscriber, WhipPublisher } from "../helpers/peers.js";

const FRAG = "application/trickle-ice-sdpfrag";

describe("session PATCH", () => {
  let server: TestServer;
  let pub: WhipPublisher;
  let sub: WhepSubscriber;
  let etag: string;
  beforeAll(async () => {
    server = await startServer();
    pub = await WhipPublisher.publish(server.url, "patch", { video: "VP8", gop: 15 });
    sub = (await WhepSubscriber.play(server.url, "patch", { audio: false })).subscriber;
    etag = `"${/^a=ice-ufrag:(\S+)/m.exec(pub.pc.remoteDescription?.sdp ?? "")?.[1]}"`;
  });
  afterAll(async () => {
    await sub?.close();
    await pub?.close();
    await server?.close();
  });

  const patch = (headers: Record<string, string>, body: string) =>
    fetch(server.url + pub.location, { method: "PATCH", headers, body });

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

  it("an ICE restart is refused with 501 rather than answered without media", async () => {
    const res = await patch({ "Content-Type": FRAG, "If-Match": "*" }, "a=ice-ufrag:newU\r\na=ice-pwd:newpasswordnewpassword12\r\n");
    expect(res.status).toBe(501);
    expect(await res.json()).toEqual({ error: "ICE restart not supported" });
    // The session is untouched: trickle with the old tag still works.
    expect((await patch({ "Content-Type": FRAG, "If-Match": etag }, "a=end-of-candidates\r\n")).status).toBe(204);
  });

  it("404 for an unknown session, 405 for other methods", async () => {
    const unknown = await fetch(`${server.url}/api/whip/session/nope`, { method: "PATCH", headers: { "Content-Type": FRAG, "If-Match": "*" }, body: "" });
    expect(unknown.status).toBe(404);
    const get = await fetch(server.url + pub.location);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toContain("PATCH");
  });
});
