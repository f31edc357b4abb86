// Debian's Chromium driven by playwright-core, with the flags this machine needs (no sandbox as
// root, no background networking into the closed network, fake camera and microphone, WebRTC on
// loopback without mDNS) and a fresh profile directory removed on close.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { chromiumPath } from "./requirements.js";

export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // A container's /dev/shm can be 64 MB; Debian's wrapper only adds this when it can measure it.
  "--disable-dev-shm-usage",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

export interface ChromiumOptions {
  /** Default: CHROMIUM_PATH, /usr/bin/chromium, /usr/bin/chromium-browser. */
  executablePath?: string;
  extraArgs?: string[];
  /** ms for the browser to start (default 30 s). */
  timeoutMs?: number;
}

export interface LaunchedChromium {
  context: BrowserContext;
  userDataDir: string;
  executablePath: string;
  /** A new tab; pages are closed with the browser. */
  newPage(): Promise<Page>;
  /** Closes the browser and removes the profile directory. Idempotent. */
  close(): Promise<void>;
}

/**
 * Launches Chromium with a new empty --user-data-dir. Playwright refuses --user-data-dir in `args`,
 * so the profile goes through launchPersistentContext, which passes it as that flag.
 */
export async function launchChromium(opts: ChromiumOptions = {}): Promise<LaunchedChromium> {
  const executablePath = opts.executablePath ?? chromiumPath();
  if (!executablePath) throw new Error("no Chromium binary (apt-get install chromium, or set CHROMIUM_PATH)");
  const userDataDir = mkdtempSync(path.join(tmpdir(), "sfu-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(opts.extraArgs ?? [])],
      timeout: opts.timeoutMs ?? 30_000,
      // Keep the caller's environment out of Chromium's own proxy detection.
      env: { ...process.env, no_proxy: "127.0.0.1,localhost", NO_PROXY: "127.0.0.1,localhost" },
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    context,
    userDataDir,
    executablePath,
    newPage: () => context.newPage(),
    close: () =>
      (closing ??= (async () => {
        try {
          await context.close();
        } catch {
          // already gone (crashed or closed by the test)
        }
        rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
      })()),
  };
}
