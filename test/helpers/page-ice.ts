// In-page WHIP/WHEP helpers for Chromium tests: installed into a page with
// `page.evaluate(installIceHelpers)`, then called from later page.evaluate bodies as
// `window.__gathered(pc)` and `window.__iceRestart(pc, sessionUrl)`. Everything the page runs must
// live inside the installer, since Playwright sends its source text to the browser.

export interface IceRestartResult {
  /** Status of the PATCH. */
  status: number;
  /** The new ETag the PATCH answered with. */
  etag: string | null;
  /** The ufrag of the server's new credentials. */
  ufrag: string | undefined;
}

export interface PageIceHelpers {
  __gathered(pc: RTCPeerConnection): Promise<void>;
  /** An ICE restart the way RFC 9725 §4.4.2 describes it, for a session whose one section is mid 0. */
  __iceRestart(pc: RTCPeerConnection, sessionUrl: string): Promise<IceRestartResult>;
}

export function installIceHelpers(): void {
  const w = window as unknown as PageIceHelpers;
  w.__gathered = (pc) =>
    new Promise<void>((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
      setTimeout(resolve, 2000);
    });
  w.__iceRestart = async (pc, sessionUrl) => {
    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer());
    await w.__gathered(pc);
    const offer = pc.localDescription?.sdp ?? "";
    const frag = [
      `a=ice-ufrag:${/a=ice-ufrag:(\S+)/.exec(offer)?.[1]}`,
      `a=ice-pwd:${/a=ice-pwd:(\S+)/.exec(offer)?.[1]}`,
      "a=mid:0",
      ...(offer.match(/^a=candidate:.*$/gm) ?? []),
      "a=end-of-candidates",
    ].join("\r\n");
    const patched = await fetch(sessionUrl, {
      method: "PATCH",
      headers: { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*" },
      body: frag + "\r\n",
    });
    const answerFrag = await patched.text();
    const ufrag = /a=ice-ufrag:(\S+)/.exec(answerFrag)?.[1];
    const pwd = /a=ice-pwd:(\S+)/.exec(answerFrag)?.[1];
    const candidates = answerFrag.match(/^a=candidate:.*$/gm) ?? [];
    const answer = (pc.remoteDescription?.sdp ?? "")
      .split("\r\n")
      .filter((l) => !l.startsWith("a=candidate:") && l !== "a=end-of-candidates")
      .map((l) => (l.startsWith("a=ice-ufrag:") ? `a=ice-ufrag:${ufrag}` : l.startsWith("a=ice-pwd:") ? `a=ice-pwd:${pwd}` : l))
      .join("\r\n")
      .replace(/(a=mid:0\r\n)/, `$1${candidates.join("\r\n")}\r\n`);
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    return { status: patched.status, etag: patched.headers.get("etag"), ufrag };
  };
}
