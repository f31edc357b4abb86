import { TimestampUnwrapper } from "./rtp.js";

export type IvfFourcc = "VP80" | "VP90" | "AV01";

export interface IvfWriterOptions {
  fourcc: IvfFourcc;
  width: number;
  height: number;
  /** Timebase denominator; the RTP video clock by default, so PTS are RTP ticks. */
  timebase?: number;
}

export const IVF_HEADER_SIZE = 32;
export const IVF_FRAME_HEADER_SIZE = 12;

/**
 * IVF writer. The caller writes `fileHeader()` first (so a crash still leaves a file FFmpeg
 * opens), then each `frame()`, and on close writes `finalHeader()` again at offset 0.
 *
 * The 32-bit field at offset 24 is often described as the frame count, but FFmpeg's IVF demuxer
 * reads it as the stream duration in timebase units (and FFmpeg's muxer writes it that way). With
 * a 1/90000 timebase a frame count there makes ffprobe report a duration of a few milliseconds,
 * so the final header stores the duration: RTP span of the frames plus one average frame
 * interval. The frame count stays available as `frameCount`.
 */
export class IvfWriter {
  readonly fourcc: IvfFourcc;
  /** Writable so a caller can record the last keyframe's size before `finalHeader()`. */
  width: number;
  height: number;
  readonly timebase: number;
  private readonly unwrapper = new TimestampUnwrapper();
  private first: number | undefined;
  private lastPts = 0;
  private frames = 0;

  constructor(options: IvfWriterOptions) {
    this.fourcc = options.fourcc;
    this.width = options.width;
    this.height = options.height;
    this.timebase = options.timebase ?? 90000;
  }

  get frameCount(): number {
    return this.frames;
  }

  /** Duration in timebase units as written by `finalHeader()`. */
  get duration(): number {
    if (this.frames < 2) return 0;
    return Math.round((this.lastPts * this.frames) / (this.frames - 1));
  }

  /** The header to write first; its duration field is 0 until `finalHeader()`. */
  fileHeader(): Buffer {
    return this.header(0);
  }

  /** The header with the real duration, to be written over the first one at offset 0. */
  finalHeader(): Buffer {
    // The field is 32 bits: past ~13 h at 90 kHz write 0, which FFmpeg reads as "unknown".
    const d = this.duration;
    return this.header(d <= 0xffffffff ? d : 0);
  }

  /** One frame record: 4-byte size, 8-byte PTS (RTP ticks since the first frame), data. */
  frame(data: Uint8Array, rtpTimestamp: number): Buffer {
    const t = this.unwrapper.unwrap(rtpTimestamp);
    this.first ??= t;
    const pts = t - this.first;
    if (pts > this.lastPts) this.lastPts = pts;
    this.frames++;
    const out = Buffer.alloc(IVF_FRAME_HEADER_SIZE + data.length);
    out.writeUInt32LE(data.length, 0);
    out.writeBigInt64LE(BigInt(pts), 4);
    out.set(data, IVF_FRAME_HEADER_SIZE);
    return out;
  }

  private header(length: number): Buffer {
    const h = Buffer.alloc(IVF_HEADER_SIZE);
    h.write("DKIF", 0, "latin1");
    h.writeUInt16LE(0, 4); // version
    h.writeUInt16LE(IVF_HEADER_SIZE, 6);
    h.write(this.fourcc, 8, "latin1");
    h.writeUInt16LE(this.width & 0xffff, 12);
    h.writeUInt16LE(this.height & 0xffff, 14);
    h.writeUInt32LE(this.timebase, 16); // timebase denominator ("rate")
    h.writeUInt32LE(1, 20); // timebase numerator ("scale")
    h.writeUInt32LE(length, 24);
    // bytes 28..31 unused, left 0
    return h;
  }
}
