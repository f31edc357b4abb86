// Tokens never reach the log: the server runs as a process at LOG_LEVEL=debug and every kind of
// credential is presented the ways clients present them (right and wrong, header and query, in
// malformed requests, in a restream URL's stream key); not one of them appears in its output.
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../helpers/net.js";
import { startServerProcess, type ServerProcess } from "../helpers/server-process.js";

const SECRETS = {
  AUTH_TOKEN: "globalSecretTok3n-aaaa",
  ROOM_TOKENS: "demo:roomSecretTok3n-bbbb",
  ADMIN_TOKEN: "adminSecretTok3n-cccc",
  METRICS_TOKEN: "metricsSecretTok3n-dddd",
  JWT_SECRET: "jwtSecretKey-eeee-0123456789",
  TRANSCODER_API_KEY: "transcoderSecretKey-ffff",
};
const WRONG = "wrongSecretTok3n-gggg";
const STREAM_KEY = "streamKeySecret-hhhh";
const offer = readFileSync(path.resolve("test/fixtures/chrome-publish.sdp"), "utf8");

describe("tokens in the log", () => {
  let server: ServerProcess;
  const jwtToken = jwt.sign({ room: "demo", permissions: ["publish", "subscribe"] }, SECRETS.JWT_SECRET, { algorithm: "HS256", expiresIn: 600 });
  beforeAll(async () => {
    server = await startServerProcess({ ...SECRETS, LOG_LEVEL: "debug" });
  });
  afterAll(async () => {
    await server?.kill();
  });

  it("no token, key or stream key appears in the server's output, whatever the request", async () => {
    const b = server.base;
    const tokens = [SECRETS.AUTH_TOKEN, "roomSecretTok3n-bbbb", SECRETS.ADMIN_TOKEN, SECRETS.METRICS_TOKEN, jwtToken, WRONG];
    const statuses: number[] = [];
    const go = async (url: string, init: RequestInit = {}) => statuses.push((await fetch(url, init)).status);
    for (const t of tokens) {
      await go(`${b}/api/whip/publish/demo`, { method: "POST", headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/sdp" }, body: offer });
      await go(`${b}/api/whep/play/demo`, { method: "POST", headers: { "X-Auth-Token": t, "Content-Type": "application/sdp" }, body: offer });
      await go(`${b}/api/records?token=${t}`);
      await go(`${b}/api/records`, { headers: { Authorization: `Bearer ${t}` } });
      await go(`${b}/records/demo_video0_1.ivf?token=${t}&x=1`);
      await go(`${b}/hls/demo/stream.m3u8?token=${t}`);
      await go(`${b}/metrics`, { headers: { Authorization: `Bearer ${t}` } });
      await go(`${b}/api/admin/rooms/demo/close`, { method: "POST", headers: { Authorization: `Bearer ${t}` } });
      await go(`${b}/streams`, { headers: { "X-API-Key": t } });
      await go(`${b}/api/rooms/demo/restreams`, {
        method: "POST",
        headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" },
        body: JSON.stringify({ url: `rtmp://127.0.0.1:1/live/${STREAM_KEY}` }),
      });
      // A request Node's parser refuses, carrying the token.
      await new Promise<void>((resolve) => {
        const s = net.connect(Number(new URL(b).port), "127.0.0.1", () =>
          s.end(`GET /api/rooms?token=${t} HTTP/1.1\r\nAuthorization: Bearer ${t}\r\nBad Header\r\n\r\n`),
        );
        s.on("data", () => undefined);
        s.on("close", () => resolve());
        s.on("error", () => resolve());
      });
    }
    await go(`${b}/streams`, { headers: { "X-API-Key": SECRETS.TRANSCODER_API_KEY } });
    // The requests were served (the test is not vacuous): 201s, 200s and refusals alike.
    expect(statuses).toContain(201);
    expect(statuses).toContain(200);
    expect(statuses).toContain(401);
    await sleep(500);
    const out = server.stdout() + server.stderr();
    expect(out).toContain('"msg":"request"');
    expect(out).toContain("token=[redacted]");
    for (const secret of [...tokens, SECRETS.TRANSCODER_API_KEY, SECRETS.JWT_SECRET, STREAM_KEY]) {
      expect(out.includes(secret), `${secret.slice(0, 12)}… in the log`).toBe(false);
    }
  });
});
