import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

describe("loadConfig", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      host: "0.0.0.0",
      maxSubsPerRoom: 0,
      allowedOrigin: "*",
      recordEnabled: false,
      recordDir: "./records",
      trustProxy: false,
      iceServers: [],
      iceGatherServers: false,
      forwardPath: "native",
      forwardWorkers: 0,
    });
    expect(c.roomTokens.size).toBe(0);
  });

  it("parses tokens, ICE servers and ranges", () => {
    const c = loadConfig({
      ROOM_TOKENS: "demo:abc, other:def",
      ICE_SERVERS: '[{"urls":["turn:turn.example.com:3478"],"username":"u","credential":"p"}]',
      ICE_PORT_RANGE: "40000-40199",
      RECORD_ENABLED: "true",
    });
    expect([...c.roomTokens]).toEqual([
      ["demo", "abc"],
      ["other", "def"],
    ]);
    expect(c.iceServers).toEqual([{ urls: ["turn:turn.example.com:3478"], username: "u", credential: "p" }]);
    expect(c.icePortRange).toEqual([40000, 40199]);
    expect(c.recordEnabled).toBe(true);
    expect(loadConfig({ ICE_SERVERS: "stun:a:3478, stun:b:3478" }).iceServers).toEqual([{ urls: ["stun:a:3478"] }, { urls: ["stun:b:3478"] }]);
  });

  it.each([
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["RATE_LIMIT_RPS", "-1"],
    ["RATE_LIMIT_BURST", "0"],
    ["MAX_SUBS_PER_ROOM", "1.5"],
    ["RECORD_ENABLED", "maybe"],
    ["ROOM_TOKENS", "demo"],
    ["ROOM_TOKENS", "bad room:x"],
    ["ICE_SERVERS", "[{"],
    ["ICE_SERVERS", "http://example.com"],
    ["ICE_PORT_RANGE", "5000"],
    ["ICE_PORT_RANGE", "50000-40000"],
    ["ICE_PUBLIC_IPS", "not-an-ip"],
    ["ALLOWED_ORIGIN", "example.com"],
    ["TRUST_PROXY", "2"],
    ["FORWARD_WORKERS", "-1"],
    ["FORWARD_WORKERS", "65"],
  ])("%s=%s stops start-up naming the variable", (name, value) => {
    try {
      loadConfig({ [name]: value });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(name);
      expect((err as Error).message).toContain(name);
    }
  });
});
