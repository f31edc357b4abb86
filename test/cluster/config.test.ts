// The cluster's variables: off without REDIS_URL, and every bad value named at start-up.
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

const ON = { REDIS_URL: "redis://127.0.0.1:6379", CLUSTER_ADVERTISE_URL: "http://10.0.0.5:8080", CLUSTER_SECRET: "0123456789abcdef" };

describe("cluster configuration", () => {
  it("is off without REDIS_URL, even with the other variables set", () => {
    expect(loadConfig({}).cluster).toBeUndefined();
    expect(loadConfig({ CLUSTER_SECRET: "x", CLUSTER_NODE_ID: "a b" }).cluster).toBeUndefined();
    expect(loadConfig({}).drainSeconds).toBe(0);
  });

  it("reads REDIS_URL, the advertised URL, the secret and the node id", () => {
    const c = loadConfig({ ...ON, CLUSTER_NODE_ID: "edge-1", PORT: "8081" }).cluster;
    expect(c).toEqual({ redisUrl: ON.REDIS_URL, advertiseUrl: "http://10.0.0.5:8080", secret: ON.CLUSTER_SECRET, nodeId: "edge-1", maxDirectEdges: 8 });
    // The default node id comes from the host name and the port.
    expect(loadConfig({ ...ON, PORT: "9000" }).cluster?.nodeId).toMatch(/^[A-Za-z0-9_-]+-9000$/);
  });

  it.each([
    [{ REDIS_URL: "http://127.0.0.1:6379" }, "REDIS_URL"],
    [{ REDIS_URL: "not a url" }, "REDIS_URL"],
    [{ CLUSTER_ADVERTISE_URL: undefined }, "CLUSTER_ADVERTISE_URL"],
    [{ CLUSTER_ADVERTISE_URL: "ftp://x" }, "CLUSTER_ADVERTISE_URL"],
    [{ CLUSTER_ADVERTISE_URL: "http://x:8080/api" }, "CLUSTER_ADVERTISE_URL"],
    [{ CLUSTER_SECRET: undefined }, "CLUSTER_SECRET"],
    [{ CLUSTER_SECRET: "short" }, "CLUSTER_SECRET"],
    [{ CLUSTER_SECRET: "has a space in it!!" }, "CLUSTER_SECRET"],
    [{ CLUSTER_NODE_ID: "a.b" }, "CLUSTER_NODE_ID"],
    [{ CLUSTER_MAX_DIRECT_EDGES: "0" }, "CLUSTER_MAX_DIRECT_EDGES"],
    [{ DRAIN_SECONDS: "-1" }, "DRAIN_SECONDS"],
  ])("stops on %o naming %s", (bad, variable) => {
    const env: Record<string, string | undefined> = { ...ON, ...bad };
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
  });
});
