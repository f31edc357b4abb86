import { open, type FileHandle } from "node:fs/promises";

/**
 * A file written strictly in order from synchronous callers: appends and header patches are
 * queued on one promise chain, so the forwarding path never waits for the disk. The first
 * failure (ENOSPC, EACCES, EIO, ...) stops all further writes and is reported once.
 */
export class SerialFile {
  private handle: Promise<FileHandle>;
  private chain: Promise<unknown>;
  private position = 0;
  private failed = false;
  private closing: Promise<void> | undefined;
  /** Bytes queued but not yet written: bounds memory when the disk is slower than the stream. */
  private queued = 0;

  constructor(
    readonly path: string,
    private readonly onError: (err: Error) => void,
    private readonly maxQueuedBytes = 64 * 1024 * 1024,
  ) {
    // "w", not "wx": the recorder picks a name no regular file has, and whatever else sits at
    // that name (a device, a FIFO an operator placed) is the operator's choice to write to.
    this.handle = open(path, "w");
    this.chain = this.handle.catch((err: Error) => this.fail(err));
  }

  get ok(): boolean {
    return !this.failed;
  }

  get size(): number {
    return this.position;
  }

  append(data: Buffer): void {
    if (this.failed || this.closing || data.length === 0) return;
    if (this.queued + data.length > this.maxQueuedBytes) {
      this.fail(new Error(`disk too slow: over ${this.maxQueuedBytes} bytes waiting to be written`));
      return;
    }
    const at = this.position;
    this.position += data.length;
    this.queued += data.length;
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        const fh = await this.handle;
        await fh.write(data, 0, data.length, at);
      } catch (err) {
        this.fail(err as Error);
      } finally {
        this.queued -= data.length;
      }
    });
  }

  /** Overwrites bytes at `at` (a header patched on close). */
  writeAt(data: Buffer, at: number): void {
    if (this.failed || this.closing) return;
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        await (await this.handle).write(data, 0, data.length, at);
      } catch (err) {
        this.fail(err as Error);
      }
    });
  }

  /** Waits for every queued write, flushes to disk, closes. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.chain.then(async () => {
      let fh: FileHandle;
      try {
        fh = await this.handle;
      } catch {
        return;
      }
      try {
        if (!this.failed) await fh.datasync();
      } catch (err) {
        this.fail(err as Error);
      }
      await fh.close().catch(() => undefined);
    });
    return this.closing;
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.onError(err);
  }
}
