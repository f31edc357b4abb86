// The HTTP contract of docs/api.md, status for status and message for message, through the wire.
// Publishers here are SDP offers whose ICE never completes: enough to hold a room for the
// request-level cases (409, 422, 403) without media.
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import http from "node:http";
import net from "node:net";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8").replace(/\r?\n/g, "\r\n");
const publishOffer = fixture("chrome-publish.sdp");
const playOffer = fixture("chrome-offer.sdp");
/** A publish offer with only the given video section codec kept (VP8 = 96, H.264 42e01f = 106). */
const publishOnly = (pt: number) =>
  publishOffer.replace(/m=video 9 UDP\/TLS\/RTP\/SAVPF [\d ]+/, `m=video 9 UDP/TLS/RTP/SAVPF ${pt}`).replace(/a=ssrc-group:FID 2222 3333\r\n/, "");
/** A play offer whose video section offers only the given payload types. */
const playOnly = (pts: number[]) => playOffer.replace(/m=video 9 UDP\/TLS\/RTP\/SAVPF [\d ]+/, `m=video 9 UDP/TLS/RTP/SAVPF ${pts.join(" ")}`);

const sdpPost = (base: string, p: string, body: string, headers: Record<string, string> = {}) =>
  fetch(base + p, { method: "POST", headers: { "Content-Type": "application/sdp", ...headers }, body });

async function expectError(res: Response, status: number, message: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(await res.json()).toEqual({ error: message });
}

describe("WHIP/WHEP statuses and messages", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ MAX_SUBS_PER_ROOM: "1" });
  });
  afterAll(() => server.close());

  it("201 with a complete answer, Location, ETag and CORS exposure", async () => {
    const res = await sdpPost(server.url, "/api/whip/publish/created", publishOffer);
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("application/sdp");
    expect(res.headers.get("location")).toMatch(/^\/api\/whip\/session\/[A-Za-z0-9_-]{22,}$/);
    expect(res.headers.get("etag")).toMatch(/^"[^"]+"$/);
    expect(res.headers.get("access-control-expose-headers")).toMatch(/Location/);
    const answer = await res.text();
    expect(answer).toMatch(/^v=0\r\n/);
    expect(answer).toMatch(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/);
    // Only the chosen codec is answered: the publisher's first preference, VP8, with the RTX
    // Chrome pairs with it (97, apt=96; its offer names the RTX SSRC in a FID group).
    expect(answer).toMatch(/m=video \d+ UDP\/TLS\/RTP\/SAVPF 96 97\r\n/);
    expect(answer).toMatch(/\r\na=fmtp:97 apt=96\r\n/);
    const del = await fetch(server.url + res.headers.get("location"), { method: "DELETE" });
    expect(del.status).toBe(200);
    const again = await fetch(server.url + res.headers.get("location"), { method: "DELETE" });
    await expectError(again, 404, "session not found");
  });

  it("400 invalid room name", async () => {
    // (fetch itself resolves dot segments such as %2e%2e, so those never reach a server.)
    for (const room of ["bad.room", "a".repeat(65), "sp%20ace", "x%2Fy", "%00"]) {
      await expectError(await sdpPost(server.url, `/api/whip/publish/${room}`, publishOffer), 400, "invalid room name");
      await expectError(await sdpPost(server.url, `/api/whep/play/${room}`, playOffer), 400, "invalid room name");
    }
  });

  it("400 invalid SDP", async () => {
    for (const body of ["", "hello", "v=0\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "\u0000\u0001binary"]) {
      await expectError(await sdpPost(server.url, "/api/whip/publish/sdp", body), 400, "invalid SDP");
    }
  });

  it("415 unsupported media type", async () => {
    for (const type of ["text/plain", "application/json", "application/x-www-form-urlencoded"]) {
      const res = await fetch(`${server.url}/api/whip/publish/ct`, { method: "POST", headers: { "Content-Type": type }, body: publishOffer });
      await expectError(res, 415, "unsupported media type");
    }
    const res = await fetch(`${server.url}/api/whip/publish/ct`, { method: "POST", body: publishOffer });
    expect(res.status).toBe(415);
  });

  it("413 over 1 MiB", async () => {
    const res = await sdpPost(server.url, "/api/whip/publish/big", publishOffer + "a=x:" + "y".repeat(1024 * 1024) + "\r\n");
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: "request body too large" });
  });

  it("422 when no codec can be forwarded", async () => {
    const offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n";
    const res = await sdpPost(server.url, "/api/whip/publish/pcmu", offer);
    expect(res.status).toBe(422);
    expect((await res.json()).error).toMatch(/no supported codec/);
  });

  it("409 publisher already exists, 404 without publisher, 403 at the cap, 422 naming the codec", async () => {
    await expectError(await sdpPost(server.url, "/api/whep/play/busy", playOffer), 404, "no active publisher in room");
    const first = await sdpPost(server.url, "/api/whip/publish/busy", publishOnly(106));
    expect(first.status).toBe(201);
    await expectError(await sdpPost(server.url, "/api/whip/publish/busy", publishOffer), 409, "publisher already exists in this room");

    // The publisher sends H.264 constrained baseline, mode 1: a VP8-only viewer cannot take it.
    const vp8Only = await sdpPost(server.url, "/api/whep/play/busy", playOnly([96, 97]));
    expect(vp8Only.status).toBe(422);
    expect((await vp8Only.json()).error).toContain("H264 (profile-level-id=42e01f, packetization-mode=1)");
    // Same codec name, other profile: still 422.
    const mainOnly = await sdpPost(server.url, "/api/whep/play/busy", playOnly([127, 125]));
    expect(mainOnly.status).toBe(422);

    const viewer = await sdpPost(server.url, "/api/whep/play/busy", playOffer);
    expect(viewer.status).toBe(201);
    const answer = await viewer.text();
    // Exactly the publisher's profile, in the viewer's payload type (106 in Chrome's offer), with
    // the RTX Chrome pairs with it (107, apt=106).
    expect(answer).toMatch(/m=video \d+ UDP\/TLS\/RTP\/SAVPF 106 107\r\n/);
    expect(answer).toMatch(/a=fmtp:107 apt=106\r\n/);
    expect(answer).toMatch(/a=fmtp:106 .*profile-level-id=42e01f/);
    expect(answer).toMatch(/a=sendonly/);
    await expectError(await sdpPost(server.url, "/api/whep/play/busy", playOffer), 403, "subscriber limit reached");

    const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as { name: string }[];
    expect(rooms.find((r) => r.name === "busy")).toMatchObject({ name: "busy", hasPublisher: true, tracks: 2, subscribers: 1 });

    await fetch(server.url + first.headers.get("location"), { method: "DELETE" });
    await expectError(await sdpPost(server.url, "/api/whep/play/busy", playOffer), 404, "no active publisher in room");
    const viewerGone = await fetch(server.url + viewer.headers.get("location"), { method: "DELETE" });
    expect(viewerGone.status).toBe(404);
  });

  it("OPTIONS answers 204 with Accept-Post; other methods 405", async () => {
    const opt = await fetch(`${server.url}/api/whip/publish/x`, { method: "OPTIONS" });
    expect(opt.status).toBe(204);
    expect(opt.headers.get("accept-post")).toBe("application/sdp");
    const pre = await fetch(`${server.url}/api/whep/play/x`, {
      method: "OPTIONS",
      headers: { Origin: "https://example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization" },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.headers.get("access-control-allow-methods")).toBe("GET, POST, PATCH, DELETE, OPTIONS");
    expect(pre.headers.get("access-control-allow-headers")).toBe("Content-Type, Authorization, X-Auth-Token, If-Match");
    const get = await fetch(`${server.url}/api/whip/publish/x`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toContain("POST");
  });

  it("CORS headers on every API response", async () => {
    const res = await fetch(`${server.url}/api/rooms`, { headers: { Origin: "https://example.com" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-methods")).toBe("GET, POST, PATCH, DELETE, OPTIONS");
    expect(res.headers.get("access-control-expose-headers")).toBe("Location, Link, ETag, Accept-Patch, Accept-Post, Retry-After");
    // Credentials are bearer tokens, never cookies: no origin is ever granted credentialed access.
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    const preflight = await fetch(`${server.url}/api/whip/publish/x`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization" },
    });
    expect(preflight.headers.get("access-control-allow-credentials")).toBeNull();
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("status routes", async () => {
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok");
    const boot = await (await fetch(`${server.url}/api/bootstrap`)).json();
    expect(boot).toEqual({
      authEnabled: false,
      recordEnabled: false,
      iceServers: [],
      features: { rooms: true, records: true, hls: true, rtmp: true, hlsForEveryRoom: false },
    });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^# TYPE live_rooms gauge$/m);
    expect(metrics).toMatch(/^# TYPE live_rtp_bytes_total counter$/m);
    expect(metrics).toMatch(/^process_cpu_user_seconds_total /m);
    await expectError(await fetch(`${server.url}/api/admin/rooms/x/close`, { method: "POST" }), 401, "unauthorized");
  });
});

describe("Link headers for ICE servers", () => {
  it("one Link per configured server, TURN with credentials", async () => {
    const server = await startServer({
      ICE_SERVERS: '[{"urls":"stun:stun.example.com:3478"},{"urls":["turn:turn.example.com:3478?transport=udp"],"username":"u","credential":"p"}]',
    });
    try {
      const res = await sdpPost(server.url, "/api/whip/publish/links", publishOffer);
      expect(res.status).toBe(201);
      const link = res.headers.get("link") ?? "";
      expect(link).toContain('<stun:stun.example.com:3478>; rel="ice-server"');
      expect(link).toContain('<turn:turn.example.com:3478?transport=udp>; rel="ice-server"; username="u"; credential="p"; credential-type="password"');
      // The server's own ICE does not contact them: its answer has host candidates only.
      expect(await res.text()).not.toMatch(/typ (srflx|relay)/);
    } finally {
      await server.close();
    }
  });
});

describe("authentication", () => {
  const secret = "test-secret-which-is-long-enough";
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ AUTH_TOKEN: "global", ROOM_TOKENS: "vip:viptoken", JWT_SECRET: secret, ADMIN_TOKEN: "admintoken" });
  });
  afterAll(() => server.close());

  const publish = (room: string, headers: Record<string, string>) => sdpPost(server.url, `/api/whip/publish/${room}`, publishOffer, headers);
  const expect401 = async (res: Response) => {
    await expectError(res, 401, "unauthorized");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  };
  const deleteLocation = (res: Response) => fetch(server.url + res.headers.get("location"), { method: "DELETE", headers: { Authorization: "Bearer global" } });

  it("rejects a missing or wrong token with 401 and WWW-Authenticate", async () => {
    await expect401(await publish("a1", {}));
    await expect401(await publish("a1", { Authorization: "Bearer nope" }));
    await expect401(await publish("vip", { Authorization: "Bearer admintoken" }));
  });

  it("accepts the room token for its room only, the global token, and X-Auth-Token", async () => {
    const vip = await publish("vip", { Authorization: "Bearer viptoken" });
    expect(vip.status).toBe(201);
    await expect401(await publish("other", { Authorization: "Bearer viptoken" }));
    const global = await publish("a2", { "X-Auth-Token": "global" });
    expect(global.status).toBe(201);
    await deleteLocation(vip);
    await deleteLocation(global);
  });

  it("JWT: valid, wildcard, expired, alg none, wrong room, wrong permission", async () => {
    const ok = jwt.sign({ room: "j1", permissions: ["publish"] }, secret, { algorithm: "HS256", expiresIn: 60 });
    const res = await publish("j1", { Authorization: `Bearer ${ok}` });
    expect(res.status).toBe(201);
    await deleteLocation(res);
    const star = jwt.sign({ room: "*" }, secret, { algorithm: "HS256" });
    const res2 = await publish("j2", { Authorization: `Bearer ${star}` });
    expect(res2.status).toBe(201);
    await deleteLocation(res2);

    const expired = jwt.sign({ room: "j3", exp: Math.floor(Date.now() / 1000) - 60 }, secret, { algorithm: "HS256" });
    await expect401(await publish("j3", { Authorization: `Bearer ${expired}` }));
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64({ room: "j3" })}.`;
    await expect401(await publish("j3", { Authorization: `Bearer ${none}` }));
    const wrongRoom = jwt.sign({ room: "elsewhere" }, secret, { algorithm: "HS256" });
    await expect401(await publish("j3", { Authorization: `Bearer ${wrongRoom}` }));
    const subOnly = jwt.sign({ room: "j3", permissions: ["subscribe"] }, secret, { algorithm: "HS256" });
    await expect401(await publish("j3", { Authorization: `Bearer ${subOnly}` }));
    const wrongSecret = jwt.sign({ room: "j3" }, "another-secret", { algorithm: "HS256" });
    await expect401(await publish("j3", { Authorization: `Bearer ${wrongSecret}` }));
  });

  it("admin close needs the admin credential; 404 for an unknown room", async () => {
    await expect401(await fetch(`${server.url}/api/admin/rooms/x/close`, { method: "POST", headers: { Authorization: "Bearer global" } }));
    await expectError(
      await fetch(`${server.url}/api/admin/rooms/nothere/close`, { method: "POST", headers: { Authorization: "Bearer admintoken" } }),
      404,
      "room not found",
    );
    const res = await publish("closeme", { Authorization: "Bearer global" });
    expect(res.status).toBe(201);
    const adminJwt = jwt.sign({ permissions: "admin" }, secret, { algorithm: "HS256" });
    const closed = await fetch(`${server.url}/api/admin/rooms/closeme/close`, { method: "POST", headers: { Authorization: `Bearer ${adminJwt}` } });
    expect(closed.status).toBe(200);
    const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as { name: string }[];
    expect(rooms.map((r) => r.name)).not.toContain("closeme");
  });

  it("bootstrap says auth is on; records need a token", async () => {
    expect((await (await fetch(`${server.url}/api/bootstrap`)).json()).authEnabled).toBe(true);
    await expect401(await fetch(`${server.url}/api/records`));
    expect((await fetch(`${server.url}/api/records`, { headers: { Authorization: "Bearer global" } })).status).toBe(200);
  });
});

describe("rate limit", () => {
  it("429 with Retry-After once the burst is spent", async () => {
    const server = await startServer({ RATE_LIMIT_RPS: "1", RATE_LIMIT_BURST: "5" });
    try {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 7; i++) {
        last = await fetch(`${server.url}/api/rooms`);
        statuses.push(last.status);
      }
      expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(statuses.slice(5)).toEqual([429, 429]);
      expect(Number(last?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(await last?.json()).toEqual({ error: "too many requests" });
      // Health and metrics stay reachable for probes.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

/** Bytes written to a plain TCP socket, everything the server answers until it closes. */
function rawExchange(url: string, bytes: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(new URL(url).port), "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (d) => chunks.push(d));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const [head, body = ""] = text.split("\r\n\r\n");
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body });
    });
    socket.end(bytes);
  });
}

describe("requests Node's HTTP parser refuses", () => {
  it("400 and 431 in docs/api.md's shape with CORS headers, and they spend the sender's rate-limit bucket", async () => {
    const server = await startServer({ RATE_LIMIT_RPS: "1", RATE_LIMIT_BURST: "3", ALLOWED_ORIGIN: "https://app.example" });
    try {
      const bad = await rawExchange(server.url, "GARBAGE \x01\r\n\r\n");
      expect(bad.status).toBe(400);
      expect(bad.head).toMatch(/^Access-Control-Allow-Origin: https:\/\/app\.example$/im);
      expect(bad.head).toMatch(/^Access-Control-Expose-Headers: .*Retry-After/im);
      expect(JSON.parse(bad.body)).toEqual({ error: "bad request" });
      const big = await rawExchange(server.url, `GET /api/rooms HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
      expect(big.status).toBe(431);
      expect(big.head).toMatch(/^Access-Control-Allow-Origin: https:\/\/app\.example$/im);
      expect(JSON.parse(big.body)).toEqual({ error: "request header fields too large" });
      await rawExchange(server.url, "GARBAGE\r\n\r\n");
      // Three points spent by malformed requests: the next well-formed API request is over the limit.
      const after = await fetch(`${server.url}/api/rooms`);
      expect(after.status).toBe(429);
      const again = await rawExchange(server.url, "GARBAGE\r\n\r\n");
      expect(again.status).toBe(429);
      expect(again.head).toMatch(/^Retry-After: \d+$/im);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe("records", () => {
  let server: TestServer;
  let dir: string;
  let outside: string;
  beforeAll(async () => {
    const root = mkdtempSync(path.join(tmpdir(), "records-"));
    dir = path.join(root, "records");
    mkdirSync(dir);
    outside = path.join(root, "secret.txt");
    writeFileSync(outside, "do not serve");
    writeFileSync(path.join(dir, "demo_video0_1710123456.ivf"), Buffer.alloc(1000, 7));
    writeFileSync(path.join(dir, "demo_audio0_1710123457.ogg"), Buffer.from("OggS-data"));
    writeFileSync(path.join(dir, "notes.txt"), "not a recording");
    // Symlinks with recording names, to a file outside and to a file inside: neither is listed or served.
    symlinkSync(outside, path.join(dir, "demo_video1_1710123458.ivf"));
    symlinkSync(path.join(dir, "demo_video0_1710123456.ivf"), path.join(dir, "demo_video2_1710123459.ivf"));
    server = await startServer({ RECORD_DIR: dir });
  });
  afterAll(() => server.close());

  it("lists recordings newest first with size, time and url", async () => {
    const list = (await (await fetch(`${server.url}/api/records`)).json()) as { name: string; size: number; modTime: string; url: string }[];
    expect(list.map((r) => r.name).sort()).toEqual(["demo_audio0_1710123457.ogg", "demo_video0_1710123456.ivf"]);
    const ivf = list.find((r) => r.name.endsWith(".ivf"));
    expect(ivf).toMatchObject({ size: 1000, url: "/records/demo_video0_1710123456.ivf" });
    expect(ivf?.modTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it("serves a file with Range", async () => {
    const full = await fetch(`${server.url}/records/demo_video0_1710123456.ivf`);
    expect(full.status).toBe(200);
    expect((await full.arrayBuffer()).byteLength).toBe(1000);
    const part = await fetch(`${server.url}/records/demo_video0_1710123456.ivf`, { headers: { Range: "bytes=10-19" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 10-19/1000");
    expect((await part.arrayBuffer()).byteLength).toBe(10);
  });

  /** GET with the path sent exactly as written: fetch would resolve dot segments before sending. */
  const rawGet = (p: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port: Number(new URL(server.url).port), path: p }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
    });

  it.each([
    "/records/..%2fsecret.txt",
    "/records/%2e%2e%2fsecret.txt",
    "/records/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/records/..%5csecret.txt",
    "/records/%2fetc%2fpasswd",
    "/records/notes.txt",
    "/records/demo_video0_1710123456.ivf%00.txt",
    "/records/..",
    "/records/../secret.txt",
    "/records//etc/passwd",
    `/records/${encodeURIComponent(path.resolve("/etc/passwd"))}`,
    "/records/../../etc/passwd",
    "/records/./../secret.txt",
    "/records/demo_video1_1710123458.ivf",
    "/records/demo_video2_1710123459.ivf",
  ])("never serves %s", async (p) => {
    const { status, body } = await rawGet(p);
    expect([400, 404]).toContain(status);
    expect(body).not.toContain("do not serve");
    expect(body).not.toContain("root:");
  });
});

describe("capacity limits (RFC 9725 §4.6)", () => {
  it("503 with Retry-After and a counted metric when rooms, sessions or media ports run out", async () => {
    const server = await startServer({ MAX_ROOMS: "1", MAX_SESSIONS: "2" });
    try {
      expect((await sdpPost(server.url, "/api/whip/publish/one", publishOffer)).status).toBe(201);
      const rooms = await sdpPost(server.url, "/api/whip/publish/two", publishOffer);
      expect(rooms.status).toBe(503);
      expect(rooms.headers.get("retry-after")).toBe("5");
      expect(await rooms.json()).toEqual({ error: "server at capacity: too many rooms" });
      expect((await sdpPost(server.url, "/api/whep/play/one", playOffer)).status).toBe(201);
      const sessions = await sdpPost(server.url, "/api/whep/play/one", playOffer);
      expect(sessions.status).toBe(503);
      expect(await sessions.json()).toEqual({ error: "server at capacity: too many sessions" });
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/^live_capacity_refusals_total\{limit="rooms"\} 1$/m);
      expect(metrics).toMatch(/^live_capacity_refusals_total\{limit="sessions"\} 1$/m);
    } finally {
      await server.close();
    }
  });
  // An exhausted ICE port range is the same capacity kind (test/sfu/rooms.test.ts).
});

describe("metrics token", () => {
  it("METRICS_TOKEN puts /metrics behind a bearer token", async () => {
    const server = await startServer({ METRICS_TOKEN: "scrape" });
    try {
      expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${server.url}/metrics`, { headers: { Authorization: "Bearer wrong" } })).status).toBe(401);
      const ok = await fetch(`${server.url}/metrics`, { headers: { Authorization: "Bearer scrape" } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toMatch(/^live_rooms /m);
    } finally {
      await server.close();
    }
  });
});
