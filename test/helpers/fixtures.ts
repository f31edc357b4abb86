// The SDP offers under test/fixtures, with CRLF line ends as clients send them.
import { readFileSync } from "node:fs";

/** test/fixtures/<name> (e.g. "chrome-publish.sdp", "offers/firefox.sdp"), lines ended by CRLF. */
export function fixtureSdp(name: string): string {
  return readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8").replace(/\r?\n/g, "\r\n");
}
