/**
 * Keyframe requests to one publisher track, at most one per `intervalMs`. A request inside the
 * window is deferred to its end rather than dropped: browsers send a keyframe only when asked,
 * so a dropped request would leave a joining subscriber black until the next natural keyframe.
 */
export class KeyframeRequester {
  private lastSent = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Requests that went out to the publisher (for /metrics). */
  requestsSent = 0;
  /** PLI/FIR received from this track's viewers (for /metrics); each also asks through request(). */
  requestsFromViewers = 0;

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
