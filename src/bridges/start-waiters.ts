// Callers waiting for a job's run to start (POST /start-stream answers whether FFmpeg started):
// settled together when the run is producing output or ends, or each by its own deadline.

type Waiter = { resolve: () => void; reject: (err: Error) => void; timer?: NodeJS.Timeout };

export class StartWaiters {
  private waiters: Waiter[] = [];

  /**
   * Settles with resolveAll()/rejectAll(), or after `ms` as `atDeadline()` says: undefined
   * resolves, a string rejects with it.
   */
  add(ms: number, atDeadline: () => string | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        const reason = atDeadline();
        if (reason === undefined) resolve();
        else reject(new Error(reason));
      }, ms);
      this.waiters.push(w);
    });
  }

  resolveAll(): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  rejectAll(reason: string): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(reason));
    }
  }
}
