import { randomBytes } from "node:crypto";
import { endDtlsFlights } from "./werift-adapter.js";
import { completeAnswer, type IceSettings, type PeerHandle } from "./peer.js";
import type { SdpFragment } from "./sdpfrag.js";

export type EndReason = "delete" | "ice-failed" | "timeout" | "admin-close" | "publisher-left" | "shutdown" | "error";

/** 128 random bits from the CSPRNG, URL-safe: session resource ids must not be guessable. */
export function newSessionId(): string {
  return randomBytes(16).toString("base64url");
}

/** How long a peer may take to connect, and how long it may stay silent once connected. */
export interface Liveness {
  connectTimeoutMs: number;
  silenceTimeoutMs: number;
}

/**
 * What publishers and subscribers share: a werift peer, a watchdog that ends the session when the
 * remote vanishes without DELETE (werift alone notices only after ~27 s), and an idempotent close.
 */
export abstract class PeerSession {
  readonly id: string;
  connected = false;
  private readonly watchdog: NodeJS.Timeout;
  private closing: Promise<void> | undefined;
  private readonly endListeners: ((reason: EndReason) => void)[] = [];

  protected constructor(
    readonly peer: PeerHandle,
    liveness: Liveness,
    /** Given when the id was needed before the peer existed (callbacks ask about the session first). */
    id: string = newSessionId(),
  ) {
    this.id = id;
    const started = performance.now();
    peer.pc.connectionStateChange.subscribe((state) => {
      if (state === "connected" && !this.connected) {
        this.connected = true;
        this.onConnected();
      } else if (state === "failed" || state === "closed") {
        void this.close(state === "failed" ? "ice-failed" : "error");
      }
    });
    this.watchdog = setInterval(() => {
      const now = performance.now();
      // Silence counts from the answer on: a peer that vanishes mid-handshake goes as fast as one
      // that vanishes mid-stream; one that keeps checking but never connects gets connectTimeoutMs.
      if (now - peer.lastSeen() > liveness.silenceTimeoutMs) void this.close("timeout");
      else if (!this.connected && now - started > liveness.connectTimeoutMs) void this.close("ice-failed");
    }, 500);
    this.watchdog.unref();
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Called once when ICE and DTLS are up. */
  protected abstract onConnected(): void;
  /** Releases what the subclass holds; runs once, before the peer is closed. */
  protected abstract release(reason: EndReason): void;

  /** The entity tag of the ICE session (RFC 9725 §4.4): the server's current ICE ufrag, quoted. */
  get etag(): string {
    return `"${/^a=ice-ufrag:(\S+)/m.exec(this.peer.pc.localDescription?.sdp ?? "")?.[1] ?? ""}"`;
  }

  /** The client's current ICE username fragment. */
  get remoteUfrag(): string | undefined {
    return /^a=ice-ufrag:(\S+)/m.exec(this.peer.pc.remoteDescription?.sdp ?? "")?.[1];
  }

  /** Trickled remote candidates (RFC 9725 §4.4.1). */
  async addCandidates(frag: SdpFragment): Promise<void> {
    const pc = this.peer.pc;
    const fallbackMid = pc.getTransceivers()[0]?.mid ?? "0";
    for (const c of frag.candidates) {
      await pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.mid ?? fallbackMid }).catch(() => undefined);
    }
  }

  /**
   * ICE restart (RFC 9725 §4.4.2): the client's new credentials and candidates in, the server's
   * new credentials and candidates out; DTLS and media carry on over the new pair.
   */
  async restartIce(frag: SdpFragment, ice: IceSettings): Promise<string> {
    const pc = this.peer.pc;
    const offer = pc.remoteDescription?.sdp;
    if (!offer || frag.ufrag === undefined || frag.pwd === undefined) throw new Error("nothing to restart");
    const next = offer
      .split(/\r?\n/)
      .filter((l) => l !== "" && !l.startsWith("a=candidate:") && l !== "a=end-of-candidates")
      .map((l) => (l.startsWith("a=ice-ufrag:") ? `a=ice-ufrag:${frag.ufrag}` : l.startsWith("a=ice-pwd:") ? `a=ice-pwd:${frag.pwd}` : l))
      .join("\r\n");
    await pc.setRemoteDescription({ type: "offer", sdp: next + "\r\n" });
    const answer = await completeAnswer(pc, ice);
    await this.addCandidates(frag);
    return answer;
  }

  onEnd(listener: (reason: EndReason) => void): void {
    this.endListeners.push(listener);
  }

  close(reason: EndReason): Promise<void> {
    if (this.closing) return this.closing;
    // Closed from here on: a listener that ends the room closes this session again, and that
    // call must return at once instead of releasing and reporting the end a second time.
    let peerClosed!: () => void;
    this.closing = new Promise<void>((resolve) => (peerClosed = resolve));
    clearInterval(this.watchdog);
    this.release(reason);
    for (const l of this.endListeners) {
      try {
        l(reason);
      } catch {
        // A listener's failure must not keep the peer open.
      }
    }
    endDtlsFlights(this.peer.pc);
    this.peer.pc.close().then(peerClosed, peerClosed);
    return this.closing;
  }
}
