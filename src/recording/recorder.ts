// Ties one published track to a pure container writer from src/media: reorder, depacketize,
// write, into a file named by names.ts ({room}_{kind}{n}_{unixSeconds}.{ivf|h264|ogg}).

import type { Logger } from "../logger.js";
import { randomInt } from "node:crypto";
import { lstatSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { RtpPacket } from "werift";
import { AnnexBWriter } from "../media/annexb.js";
import { TRACK_CONTAINERS, type CodecName } from "../media/codecs.js";
import { createAssembler, type Frame, type FrameAssembler } from "../media/depacketize.js";
import { IvfWriter, IVF_HEADER_SIZE } from "../media/ivf.js";
import { OggOpusWriter } from "../media/ogg.js";
import { ReorderBuffer } from "../media/reorder.js";
import { TimestampUnwrapper, type RtpView } from "../media/rtp.js";
import type { PacketSink } from "../sfu/forward.js";
import type { PublishedTrack } from "../sfu/publisher.js";
import { fmtpParams } from "../sfu/sdp.js";
import type { Room, TrackConsumer, TrackConsumerFactory } from "../sfu/room.js";
import { SerialFile } from "./file.js";
import { freeRecordName, type TrackExtension } from "./names.js";

/** Counters read by /metrics at scrape time. */
export class RecordingStats {
  active = 0;
  finished = 0;
  failed = 0;
  bytes = 0;
}

export interface RecorderOptions {
  dir: string;
  log: Logger;
  stats: RecordingStats;
  /** Called with the finished file's path (hooks, playback conversion). */
  onFinished?: (file: string, room: string, info: FinishedRecording) => void;
}

/** What a finished track file holds, for whoever merges or converts it afterwards. */
export interface FinishedRecording {
  kind: "video" | "audio";
  codec: CodecName;
  /**
   * Wall clock (ms since the epoch) of the file's first frame: the lowest of each frame's arrival
   * less the RTP time since the first frame, so frames that were held up (a burst after a stall,
   * buffering before the connection came up) do not make the track look late.
   */
  startedAt: number;
  /** Frames (video) or packets (audio) written. */
  frames: number;
  /** Seconds covered by the frames' RTP timestamps, plus one average frame interval. */
  durationSeconds: number;
}

/** One container format behind a common shape: header first, frames, final bytes on close. */
interface ContainerWriter {
  readonly extension: TrackExtension;
  begin(first: Frame): Buffer;
  frame(f: Frame): Buffer;
  /** Bytes to append at the end, and a header to rewrite at offset 0. */
  end(): { tail?: Buffer; header?: Buffer };
  /** The header as it would be if the file ended now, rewritten about every second so a process
   * killed without closing (SIGKILL, power loss) leaves a file whose duration is known. */
  progressHeader?(): Buffer;
}

/** How often a growing file's header is rewritten with the duration so far (see progressHeader). */
const HEADER_PATCH_MS = 1000;

function containerFor(codec: CodecName, channels: number): ContainerWriter {
  const container = TRACK_CONTAINERS[codec];
  const extension = container.extension;
  switch (container.extension) {
    case "ivf": {
      let ivf: IvfWriter | undefined;
      return {
        extension,
        begin: (first) => {
          ivf = new IvfWriter({ fourcc: container.fourcc, width: first.width ?? 0, height: first.height ?? 0 });
          return ivf.fileHeader();
        },
        frame: (f) => (ivf as IvfWriter).frame(f.data, f.timestamp),
        end: () => (ivf ? { header: ivf.finalHeader() } : {}),
        progressHeader: () => (ivf as IvfWriter).finalHeader(),
      };
    }
    case "h264": {
      const annexb = new AnnexBWriter();
      return {
        extension,
        begin: () => annexb.fileHeader(),
        frame: (f) => annexb.frame(f.data),
        end: () => ({}),
      };
    }
    case "ogg": {
      const ogg = new OggOpusWriter({ serial: randomInt(0, 0xffffffff), channels: channels === 1 ? 1 : 2 });
      return {
        extension,
        begin: () => ogg.begin(),
        frame: (f) => ogg.packet(f.data, f.timestamp),
        end: () => ({ tail: ogg.end() }),
      };
    }
  }
}

/** Whether a regular file has this name: only those are never overwritten (see SerialFile). */
function regularFileAt(dir: string, name: string): boolean {
  try {
    return lstatSync(path.join(dir, name)).isFile();
  } catch {
    return false;
  }
}

export class TrackRecorder implements PacketSink, TrackConsumer {
  private readonly reorder = new ReorderBuffer<RtpView>();
  private readonly assembler: FrameAssembler;
  private readonly container: ContainerWriter;
  private file: SerialFile | undefined;
  private stopped = false;
  private closing: Promise<void> | undefined;
  private readonly codec: CodecName;
  private readonly clock = new TimestampUnwrapper();
  private startedAt = 0;
  private frames = 0;
  private headerPatchedAt = 0;
  private firstTs = 0;
  private lastTs = 0;
  readonly fileName: string;

  constructor(
    private readonly room: string,
    private readonly track: PublishedTrack,
    codec: CodecName,
    private readonly opts: RecorderOptions,
  ) {
    this.codec = codec;
    this.container = containerFor(codec, track.codec.channels ?? 2);
    this.fileName = freeRecordName(
      { room, playback: false, kind: track.kind, index: track.index, seconds: Math.floor(Date.now() / 1000), extension: this.container.extension },
      (name) => regularFileAt(opts.dir, name),
    );
    this.assembler = createAssembler(codec, {
      onKeyframeNeeded: () => track.keyframes.request(),
      spropParameterSets: fmtpParams(track.codec.fmtp).get("sprop-parameter-sets"),
    });
    opts.stats.active++;
    track.fanout.add(this, { waitForKeyframe: track.kind === "video" });
  }

  get filePath(): string {
    return path.join(this.opts.dir, this.fileName);
  }

  write(packet: RtpPacket): void {
    if (this.stopped) return;
    const h = packet.header;
    // The payload is copied: depacketizers keep fragments across packets, the packet is not ours.
    const view: RtpView = { sequenceNumber: h.sequenceNumber, timestamp: h.timestamp, marker: h.marker, payload: Buffer.from(packet.payload) };
    for (const item of this.reorder.push(view)) this.writeFrames(this.assembler.feed(item));
  }

  private writeFrames(frames: Frame[]): void {
    for (const f of frames) {
      if (this.stopped) return;
      if (!this.file) {
        this.file = new SerialFile(this.filePath, (err) => this.fail(err));
        this.file.append(this.container.begin(f));
        this.opts.log.info({ room: this.room, file: this.fileName }, "recording started");
        this.firstTs = this.clock.unwrap(f.timestamp);
      }
      this.lastTs = this.clock.unwrap(f.timestamp);
      const started = Date.now() - ((this.lastTs - this.firstTs) * 1000) / this.clockRate;
      if (this.frames === 0 || started < this.startedAt) this.startedAt = started;
      this.frames++;
      const bytes = this.container.frame(f);
      this.opts.stats.bytes += bytes.length;
      this.file.append(bytes);
      if (this.container.progressHeader) {
        const now = Date.now();
        if (now - this.headerPatchedAt >= HEADER_PATCH_MS) {
          this.headerPatchedAt = now;
          this.file.writeAt(this.container.progressHeader(), 0);
        }
      }
    }
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.track.fanout.remove(this);
    this.opts.stats.active--;
    this.opts.stats.failed++;
    this.opts.log.error({ room: this.room, file: this.fileName, err: err.message }, "recording stopped: write failed");
  }

  private get clockRate(): number {
    return this.track.codec.clockRate || (this.track.kind === "audio" ? 48000 : 90000);
  }

  private summary(): FinishedRecording {
    const span = Math.max(0, this.lastTs - this.firstTs) / this.clockRate;
    const interval = this.frames > 1 ? span / (this.frames - 1) : 0;
    return {
      kind: this.track.kind === "audio" ? "audio" : "video",
      codec: this.codec,
      startedAt: this.startedAt,
      frames: this.frames,
      durationSeconds: span + interval,
    };
  }

  /** Drains what is buffered, writes the trailer and the final header, closes. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<void> {
    this.track.fanout.remove(this);
    if (!this.stopped) {
      for (const item of this.reorder.flush()) this.writeFrames(this.assembler.feed(item));
      this.writeFrames(this.assembler.flush());
    }
    const file = this.file;
    const healthy = !this.stopped;
    this.stopped = true;
    if (!file) {
      if (healthy) this.opts.stats.active--;
      return;
    }
    if (healthy) {
      const { tail, header } = this.container.end();
      if (tail) file.append(tail);
      if (header && header.length === IVF_HEADER_SIZE) file.writeAt(header, 0);
    }
    await file.close();
    if (healthy && file.ok) {
      this.opts.stats.active--;
      this.opts.stats.finished++;
      this.opts.log.info({ room: this.room, file: this.fileName, bytes: file.size }, "recording finished");
      this.opts.onFinished?.(this.filePath, this.room, this.summary());
    }
  }
}

/** The room consumer factory: one recorder per track of every room (every forwarded codec has a container). */
export function createRecorderFactory(opts: RecorderOptions): TrackConsumerFactory {
  return (room: Room, track: PublishedTrack): TrackConsumer | undefined => {
    try {
      mkdirSync(opts.dir, { recursive: true });
    } catch (err) {
      opts.stats.failed++;
      opts.log.error({ room: room.name, dir: opts.dir, err: (err as Error).message }, "recording not started: directory unusable");
      return undefined;
    }
    try {
      return new TrackRecorder(room.name, track, track.codecName, opts);
    } catch (err) {
      // A room name no recording name can hold (the HTTP routes let none through).
      if (!(err instanceof RangeError)) throw err;
      opts.stats.failed++;
      opts.log.error({ room: room.name, err: (err as Error).message }, "recording not started: invalid name");
      return undefined;
    }
  };
}
