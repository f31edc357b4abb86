// Hooks count their HTTP calls by event and outcome for /metrics: a local receiver answers allow,
// deny or fail; no SFU.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOOK_EVENTS, Hooks, type HookClient } from "../../src/hooks/callbacks.js";

const quiet = { info: () => undefined, warn: () => undefined };
const client: HookClient = { clientId: "c", ip: "127.0.0.1", room: "r", param: "", tcUrl: "http://x/api/whep/play/r", protocol: "whep" };

describe("Hooks.calls", () => {
  let base = "";
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const path = req.url ?? "";
      res.writeHead(path.startsWith("/fail") ? 500 : 200, { "Content-Type": "text/plain" });
      res.end(path.startsWith("/deny") ? "1" : "0");
    });
  });
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("start at zero for every event and the outcomes it can have", () => {
    const hooks = new Hooks({ urls: {}, timeoutMs: 1000, serverId: "s" }, quiet);
    expect(Object.keys(hooks.calls).sort()).toEqual([...HOOK_EVENTS].sort());
    expect(hooks.calls.on_play).toEqual({ ok: 0, refused: 0, error: 0 });
    expect(hooks.calls.on_stop).toEqual({ ok: 0, error: 0 });
  });

  it("count decisions as ok, refused or error, and every notification attempt", async () => {
    const hooks = new Hooks(
      { urls: { on_connect: [`${base}/allow`], on_play: [`${base}/deny`], on_stop: [`${base}/fail`] }, timeoutMs: 1000, serverId: "s", notifyAttempts: 2 },
      quiet,
    );
    expect((await hooks.decide(["on_connect", "on_play"], client)).allowed).toBe(false);
    hooks.notify("on_stop", client);
    // The second attempt follows after a 500 ms back-off.
    await expect.poll(() => hooks.calls.on_stop.error, { timeout: 5000 }).toBe(2);
    await hooks.close();
    expect(hooks.calls.on_connect).toEqual({ ok: 1, refused: 0, error: 0 });
    expect(hooks.calls.on_play).toEqual({ ok: 0, refused: 1, error: 0 });
    expect(hooks.calls.on_stop).toEqual({ ok: 0, error: 2 });
    // A failing decision URL is an error, not a refusal.
    const down = new Hooks({ urls: { on_publish: [`${base}/fail`] }, timeoutMs: 1000, serverId: "s" }, quiet);
    expect((await down.decide(["on_publish"], client)).allowed).toBe(false);
    expect(down.calls.on_publish).toEqual({ ok: 0, refused: 0, error: 1 });
    await down.close();
  });
});
