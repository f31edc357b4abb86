import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/app.js";
import { loadConfig, type Config } from "../../src/config.js";
import { createServer, type Server } from "../../src/server.js";
import { checkConformance } from "./conformance.js";

export interface TestServer {
  /** http://127.0.0.1:<port> */
  url: string;
  app: FastifyInstance;
  /** The typed parts of the server (rooms, bridges, ingests, relays, hooks, metrics). */
  core: Server;
  config: Config;
  /** Where recordings go: a fresh temp dir unless RECORD_DIR was given. */
  recordDir: string;
  whipUrl(room: string): string;
  whepUrl(room: string): string;
  /** app.close(): ends every room and peer, finalises recordings. Idempotent. */
  close(): Promise<void>;
  /**
   * Deletes the temp record dir (not a RECORD_DIR you passed). It survives close() so tests can
   * ffprobe what was finalised; whatever is left is removed when the test process exits.
   */
  removeRecordDir(): void;
}

/** Env every test server starts with; a test's own env overrides it. */
export const TEST_SERVER_ENV: Readonly<Record<string, string>> = {
  ICE_HOSTS: "127.0.0.1",
  ICE_ADDITIONAL_HOSTS: "127.0.0.1",
  LOG_LEVEL: "warn",
  RATE_LIMIT_RPS: "1000",
  RATE_LIMIT_BURST: "1000",
  // Rooms end with their publisher, as the suites expect; continuity tests set their own grace.
  ROOM_GRACE_SECONDS: "0",
};

const tempDirs = new Set<string>();
let exitHook = false;

function tempRecordDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "sfu-records-"));
  tempDirs.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

/** The real server on an ephemeral loopback port, ICE kept on loopback, records in a fresh temp dir. */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const recordDir = env.RECORD_DIR ?? tempRecordDir();
  const ownDir = env.RECORD_DIR === undefined;
  const config = loadConfig({ ...TEST_SERVER_ENV, ...env, RECORD_DIR: recordDir });
  const core = createServer(config);
  const app = await buildApp(core, { instrument: checkConformance });
  try {
    await app.listen({ port: 0, host: "127.0.0.1" });
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.server.address();
  if (address === null || typeof address === "string") {
    await app.close();
    throw new Error("server has no TCP address");
  }
  const url = `http://127.0.0.1:${address.port}`;
  core.start();
  let closing: Promise<void> | undefined;
  return {
    url,
    app,
    core,
    config,
    recordDir,
    whipUrl: (room) => `${url}/api/whip/publish/${encodeURIComponent(room)}`,
    whepUrl: (room) => `${url}/api/whep/play/${encodeURIComponent(room)}`,
    close: () => (closing ??= app.close().then(() => undefined)),
    removeRecordDir: () => {
      if (!ownDir) return;
      rmSync(recordDir, { recursive: true, force: true });
      tempDirs.delete(recordDir);
    },
  };
}
