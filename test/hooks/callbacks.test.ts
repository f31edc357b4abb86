// SRS-style callbacks through the wire: a real HTTP receiver in the test records every body and
// answers allow / deny / slow / down per case; real werift publishers and subscribers.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { allowsBody, hookBody } from "../../src/hooks/callbacks.js";
import { SdpStatusError } from "../helpers/http.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { publishTestStream } from "../helpers/whip-client.js";
import { WhepClient } from "../helpers/whep-client.js";

interface Received {
  path: string;
  body: Record<string, string>;
  at: number;
}

/** A callback receiver: answers by path, /allow → 0, /deny → 1, /json → {"code":0}, /slow → after 5 s, /fail → 500. */
class Receiver {
  readonly received: Received[] = [];
  private server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (d: Buffer) => (data += d.toString("utf8")));
    req.on("end", () => {
      const path = req.url ?? "";
      let body: Record<string, string> = {};
      try {
        body = JSON.parse(data) as Record<string, string>;
      } catch {
        // recorded as empty
      }
      this.received.push({ path, body, at: Date.now() });
      const reply = (status: number, text: string) => {
        res.writeHead(status, { "Content-Type": "text/plain" });
        res.end(text);
      };
      if (path.startsWith("/allow")) reply(200, "0");
      else if (path.startsWith("/json")) reply(200, '{"code":0}');
      else if (path.startsWith("/deny")) reply(200, "1");
      else if (path.startsWith("/fail")) reply(500, "0");
      else if (path.startsWith("/slow")) setTimeout(() => reply(200, "0"), 5000).unref();
      else reply(404, "");
    });
  });
  base = "";

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  actions(): string[] {
    return this.received.map((r) => `${r.path.split("?")[0]}:${r.body.action}`);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A port where nothing listens: connections are refused. */
async function deadUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}/gone`;
}

const until = async (check: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end && !check()) await new Promise((r) => setTimeout(r, 50));
  return check();
};

describe("hook bodies", () => {
  it("SRS's allow rule: HTTP 200 with 0 or {code:0}", () => {
    expect(allowsBody("0")).toBe(true);
    expect(allowsBody(" 0\n")).toBe(true);
    expect(allowsBody('{"code":0}')).toBe(true);
    expect(allowsBody("1")).toBe(false);
    expect(allowsBody('{"code":403}')).toBe(false);
    expect(allowsBody("")).toBe(false);
    expect(allowsBody("ok")).toBe(false);
  });

  it("carries SRS's fields and never a token", () => {
    const body = hookBody("on_publish", "srv1", {
      clientId: "abc",
      ip: "127.0.0.1",
      room: "demo",
      param: "?token=secret&x=1",
      tcUrl: "http://h/api/whip/publish/demo",
      protocol: "whip",
    });
    expect(body).toEqual({
      action: "on_publish",
      server_id: "srv1",
      client_id: "abc",
      ip: "127.0.0.1",
      vhost: "__defaultVhost__",
      app: "live",
      stream: "demo",
      param: "?x=1",
      tcUrl: "http://h/api/whip/publish/demo",
      protocol: "whip",
    });
  });
});

describe("callbacks around real sessions", () => {
  const receiver = new Receiver();
  const open: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];
  beforeAll(() => receiver.start());
  afterAll(() => receiver.close());
  afterEach(async () => {
    await Promise.all(open.splice(0).map((x) => x.close()));
    receiver.received.length = 0;
  });

  async function serverWith(hooks: Record<string, string>): Promise<TestServer> {
    return startServer({ HOOK_TIMEOUT_MS: "1000", SERVER_ID: "test-server", ADMIN_TOKEN: "admin", ...hooks });
  }

  it("publish and play are allowed by every URL in order; end events fire once each on DELETE", async () => {
    const server = await serverWith({
      HOOK_ON_CONNECT: `${receiver.base}/allow/c1 ${receiver.base}/json/c2`,
      HOOK_ON_PUBLISH: `${receiver.base}/allow/pub`,
      HOOK_ON_PLAY: `${receiver.base}/allow/play`,
      HOOK_ON_UNPUBLISH: `${receiver.base}/allow/unpub`,
      HOOK_ON_STOP: `${receiver.base}/allow/stop`,
      HOOK_ON_CLOSE: `${receiver.base}/allow/close`,
    });
    try {
      const { client, result } = await publishTestStream(`${server.whipUrl("hooked")}?foo=bar&token=nope`, { video: { codec: "VP8" }, audio: false });
      open.push(client);
      expect(result.status).toBe(201);
      const viewer = new WhepClient({ audio: false });
      open.push(viewer);
      const play = await viewer.play(server.whepUrl("hooked"), {});
      expect(play.status).toBe(201);

      expect(receiver.actions()).toEqual([
        "/allow/c1:on_connect",
        "/json/c2:on_connect",
        "/allow/pub:on_publish",
        "/allow/c1:on_connect",
        "/json/c2:on_connect",
        "/allow/play:on_play",
      ]);
      const pub = receiver.received[2].body;
      const sessionId = result.location.split("/").pop();
      expect(pub).toMatchObject({
        action: "on_publish",
        server_id: "test-server",
        client_id: sessionId,
        stream: "hooked",
        app: "live",
        vhost: "__defaultVhost__",
        protocol: "whip",
        param: "?foo=bar",
        ip: "127.0.0.1",
      });
      expect(JSON.stringify(receiver.received)).not.toContain("nope");

      receiver.received.length = 0;
      await viewer.close();
      await client.close();
      expect(await until(() => receiver.received.length >= 4, 5000)).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(receiver.actions().sort()).toEqual(["/allow/close:on_close", "/allow/close:on_close", "/allow/stop:on_stop", "/allow/unpub:on_unpublish"]);
      const unpub = receiver.received.find((r) => r.body.action === "on_unpublish")?.body;
      expect(unpub?.client_id).toBe(sessionId);
    } finally {
      await server.close();
    }
  }, 40_000);

  it.each([
    ["a refusal (body 1)", "deny"],
    ["a non-200 status", "fail"],
    ["a timeout", "slow"],
    ["a refused connection", "dead"],
  ])(
    "%s rejects the request with 403 before any peer exists",
    async (_name, kind) => {
      const url = kind === "dead" ? await deadUrl() : `${receiver.base}/${kind}`;
      const server = await serverWith({ HOOK_ON_PUBLISH: url, HOOK_ON_UNPUBLISH: `${receiver.base}/allow/unpub` });
      try {
        const started = Date.now();
        const outcome = await publishTestStream(server.whipUrl("refused"), { video: { codec: "VP8" }, audio: false }).then(
          (ok) => {
            open.push(ok.client);
            return undefined;
          },
          (err: unknown) => err,
        );
        expect(outcome).toBeInstanceOf(SdpStatusError);
        const response = (outcome as SdpStatusError).response;
        expect(response.status).toBe(403);
        expect(JSON.parse(response.body)).toEqual({ error: "rejected by hook" });
        // A timeout answers after HOOK_TIMEOUT_MS, not the receiver's 5 s.
        expect(Date.now() - started).toBeLessThan(4000);
        const rooms = (await (await fetch(`${server.url}/api/rooms`)).json()) as unknown[];
        expect(rooms).toEqual([]);
        // No session existed, so nothing ends.
        await new Promise((r) => setTimeout(r, 300));
        expect(receiver.actions().filter((a) => a.includes("unpub"))).toEqual([]);
      } finally {
        await server.close();
      }
    },
    30_000,
  );

  it("end events fire exactly once for a vanished peer, an admin close and a shutdown", async () => {
    const server = await serverWith({
      HOOK_ON_UNPUBLISH: `${receiver.base}/allow/unpub`,
      HOOK_ON_STOP: `${receiver.base}/allow/stop`,
      PEER_TIMEOUT_SECONDS: "3",
    });
    try {
      const a = await publishTestStream(server.whipUrl("vanish"), { video: { codec: "VP8" }, audio: false });
      await a.client.close({ vanish: true });
      expect(await until(() => receiver.received.some((r) => r.body.stream === "vanish"), 10_000)).toBe(true);

      const b = await publishTestStream(server.whipUrl("admin"), { video: { codec: "VP8" }, audio: false });
      open.push(b.client);
      const viewer = new WhepClient({ audio: false });
      open.push(viewer);
      expect((await viewer.play(server.whepUrl("admin"), {})).status).toBe(201);
      const closed = await fetch(`${server.url}/api/admin/rooms/admin/close`, { method: "POST", headers: { Authorization: "Bearer admin" } });
      expect(closed.status).toBe(200);
      expect(await until(() => receiver.received.filter((r) => r.body.stream === "admin").length >= 2, 5000)).toBe(true);

      const c = await publishTestStream(server.whipUrl("shutdown"), { video: { codec: "VP8" }, audio: false });
      open.push(c.client);
      await server.close();
      await new Promise((r) => setTimeout(r, 200));
      expect(receiver.actions().sort()).toEqual(["/allow/stop:on_stop", "/allow/unpub:on_unpublish", "/allow/unpub:on_unpublish", "/allow/unpub:on_unpublish"]);
      expect(receiver.received.map((r) => r.body.stream).sort()).toEqual(["admin", "admin", "shutdown", "vanish"]);
    } finally {
      await server.close();
    }
  }, 40_000);

  it("on_record names each finalised file", async () => {
    const server = await serverWith({ RECORD_ENABLED: "true", HOOK_ON_RECORD: `${receiver.base}/allow/rec` });
    try {
      const a = await publishTestStream(server.whipUrl("recd"), { video: { codec: "VP8" }, audio: true });
      await new Promise((r) => setTimeout(r, 1500));
      await a.client.close();
      expect(await until(() => receiver.received.length >= 2, 5000)).toBe(true);
      const files = receiver.received.map((r) => r.body.file).sort();
      expect(files[0]).toMatch(/^recd_audio0_\d+\.ogg$/);
      expect(files[1]).toMatch(/^recd_video0_\d+\.ivf$/);
      expect(receiver.received.every((r) => r.body.action === "on_record" && r.body.stream === "recd")).toBe(true);
    } finally {
      await server.close();
    }
  }, 30_000);

  it("a hanging notification receiver delays nothing but its own request", async () => {
    const server = await serverWith({ HOOK_ON_UNPUBLISH: `${receiver.base}/slow`, HOOK_TIMEOUT_MS: "3000" });
    try {
      const a = await publishTestStream(server.whipUrl("slowend"), { video: { codec: "VP8" }, audio: false });
      const t0 = Date.now();
      await a.client.close();
      expect(Date.now() - t0).toBeLessThan(1500);
      // The room is free again at once for the next publisher.
      const b = await publishTestStream(server.whipUrl("slowend"), { video: { codec: "VP8" }, audio: false });
      open.push(b.client);
      expect(b.result.status).toBe(201);
    } finally {
      await server.close();
    }
  }, 30_000);
});
