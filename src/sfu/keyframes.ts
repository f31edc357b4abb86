import type { CodecName } from "./sdp.js";

/**
 * Whether this RTP payload starts a keyframe, i.e. a subscriber waiting for its first decodable
 * picture may start with this very packet. Reads only the payload descriptor / NAL header.
 */
export function startsKeyframe(codec: CodecName, p: Uint8Array): boolean {
  if (p.length === 0) return false;
  switch (codec) {
    case "VP8": {
      // RFC 7741 §4.2: S=1 and PID=0 is the first packet of a frame; P=0 in the VP8 header is a keyframe.
      const b0 = p[0];
      if ((b0 & 0x10) === 0 || (b0 & 0x07) !== 0) return false;
      let i = 1;
      if (b0 & 0x80) {
        if (p.length < 2) return false;
        const x = p[1];
        i = 2;
        if (x & 0x80) i += p.length > i && p[i] & 0x80 ? 2 : 1;
        if (x & 0x40) i += 1;
        if (x & 0x30) i += 1;
      }
      return i < p.length && (p[i] & 0x01) === 0;
    }
    case "VP9":
      // RFC 9628 §4.2: B = start of frame, P = 0 means no inter-picture dependency.
      return (p[0] & 0x08) !== 0 && (p[0] & 0x40) === 0;
    case "H264": {
      const type = p[0] & 0x1f;
      if (type === 5 || type === 7) return true;
      if (type === 24) {
        // STAP-A: 16-bit size then NAL unit, repeated.
        let i = 1;
        while (i + 2 < p.length) {
          const size = (p[i] << 8) | p[i + 1];
          const t = p[i + 2] & 0x1f;
          if (t === 5 || t === 7) return true;
          i += 2 + size;
        }
        return false;
      }
      if (type === 28 && p.length > 1) {
        const t = p[1] & 0x1f;
        return (p[1] & 0x80) !== 0 && (t === 5 || t === 7);
      }
      return false;
    }
    case "AV1":
      // AV1 RTP aggregation header: Z=0 (not a continuation) and N=1 (new coded video sequence).
      return (p[0] & 0x80) === 0 && (p[0] & 0x08) !== 0;
    case "opus":
      return true;
  }
}

/**
 * Keyframe requests to one publisher track, at most one per `intervalMs`. A request inside the
 * window is deferred to its end rather than dropped: browsers send a keyframe only when asked,
 * so a dropped request would leave a joining subscriber black until the next natural keyframe.
 */
export class KeyframeRequester {
  private lastSent = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  requestsSent = 0;

  constructor(
    private readonly send: () => void,
    private readonly intervalMs = 500,
  ) {}

  request(): void {
    if (this.closed || this.timer) return;
    const wait = this.lastSent + this.intervalMs - performance.now();
    if (wait <= 0) {
      this.fire();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fire();
    }, wait);
    this.timer.unref();
  }

  private fire(): void {
    if (this.closed) return;
    this.lastSent = performance.now();
    this.requestsSent++;
    this.send();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
