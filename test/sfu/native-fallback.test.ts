// FORWARD_PATH=native where the addon is unavailable (here forced off with WHIPSFU_NATIVE=off):
// the JavaScript fast path runs, one warning at start says why, and /metrics says which path runs.
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, expect, it, vi } from "vitest";

afterEach(() => {
  delete process.env.WHIPSFU_NATIVE;
  vi.resetModules();
});

it("falls back to the fast path with one warning saying why, and live_forward_path says fast", async () => {
  process.env.WHIPSFU_NATIVE = "off";
  vi.resetModules();
  const { effectiveForwardPath, nativeForwarding } = await import("../../src/sfu/native.js");
  expect(nativeForwarding.addon).toBeUndefined();
  expect(effectiveForwardPath("native")).toEqual({ path: "fast", fallbackReason: "WHIPSFU_NATIVE=off" });
  expect(effectiveForwardPath("fast")).toEqual({ path: "fast" });
  expect(effectiveForwardPath("werift")).toEqual({ path: "werift" });

  const { createServer } = await import("../../src/server.js");
  const { loadConfig } = await import("../../src/config.js");
  const lines: { level: number; msg: string; reason?: string; forwardPath?: string }[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const server = createServer(loadConfig({}), pino({ level: "info" }, sink));
  try {
    server.start();
    const warnings = lines.filter((l) => l.level === 40 && /FORWARD_PATH=native is unavailable/.test(l.msg));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.reason).toBe("WHIPSFU_NATIVE=off");
    expect(lines.find((l) => l.msg === "forwarding path")?.forwardPath).toBe("fast");
    expect(server.rooms.forwardPath).toBe("fast");
    expect(await server.metrics.metrics()).toMatch(/^live_forward_path\{path="fast"\} 1$/m);
  } finally {
    await server.close();
  }
});
