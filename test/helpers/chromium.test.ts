import { existsSync } from "node:fs";
import http from "node:http";
import { describe, expect, it } from "vitest";
import { launchChromium } from "./chromium.js";
import { requireOrSkip } from "./requirements.js";

const need = requireOrSkip("chromium");

describe.skipIf(!need.ok)(need.title("Debian Chromium through playwright-core"), () => {
  it("opens about:blank with WebRTC and a fake camera, then removes its profile", async () => {
    const browser = await launchChromium();
    try {
      expect(existsSync(browser.userDataDir)).toBe(true);
      const page = await browser.newPage();
      await page.goto("about:blank");
      expect(await page.evaluate(() => typeof RTCPeerConnection)).toBe("function");
      // --use-fake-device-for-media-stream + --use-fake-ui-for-media-stream: a camera and a
      // microphone without a prompt. getUserMedia needs a secure context: http://127.0.0.1 is one.
      const server = http.createServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<!doctype html><title>t</title>");
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      const kinds = await (async () => {
        const addr = server.address();
        await page.goto(`http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}/`);
        return page.evaluate(async () => {
          const s = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
          const k = s
            .getTracks()
            .map((t) => t.kind)
            .sort();
          for (const t of s.getTracks()) t.stop();
          return k;
        });
      })().finally(() => {
        // Chromium keeps its keep-alive connection open: drop it, or close() waits for the browser.
        server.closeAllConnections();
        server.close();
      });
      expect(kinds).toEqual(["audio", "video"]);
    } finally {
      await browser.close();
      await browser.close(); // idempotent
    }
    expect(existsSync(browser.userDataDir)).toBe(false);
  });
});
