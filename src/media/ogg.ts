import { opusPacketSamples } from "./opus.js";
import { TimestampUnwrapper } from "./rtp.js";

/** Ogg page header_type flags (RFC 3533 §6). */
export const OGG_CONTINUED = 0x01;
export const OGG_BOS = 0x02;
export const OGG_EOS = 0x04;
/** Granule position of a page on which no packet ends. */
export const OGG_NO_GRANULE = -1n;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

/** Ogg's CRC-32: polynomial 0x04c11db7, MSB first, initial value 0, no final XOR. */
export function oggCrc32(data: Uint8Array, crc = 0): number {
  for (let i = 0; i < data.length; i++) {
    crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ data[i]) & 0xff]) >>> 0;
  }
  return crc >>> 0;
}

/** Lacing values of one packet: 255 for each full segment, then the remainder, even if 0. */
export function lacingValues(length: number): number[] {
  const v: number[] = new Array<number>(Math.floor(length / 255)).fill(255);
  v.push(length % 255);
  return v;
}

export interface OggPacket {
  data: Uint8Array;
  /** Granule position once this packet is complete. */
  granule: bigint;
}

/** Serializes one logical bitstream into pages, numbering them and computing their CRC. */
export class OggStream {
  private sequence = 0;

  constructor(readonly serial: number) {}

  get pageCount(): number {
    return this.sequence;
  }

  /**
   * Lays packets out on as many pages as their lacing needs (255 segments per page at most). A
   * packet that does not fit continues on the next page with the "continued" flag; a page on
   * which no packet ends gets granule -1. `flags` (BOS/EOS) go on the first/last page.
   */
  pages(packets: readonly OggPacket[], flags = 0): Buffer {
    const out: Buffer[] = [];
    let lacing: number[] = [];
    let body: Uint8Array[] = [];
    let granule = OGG_NO_GRANULE;
    // Whether the page being filled starts with the rest of a packet from the previous page.
    let continued = false;
    const emit = (last: boolean): void => {
      let f = continued ? OGG_CONTINUED : 0;
      if (out.length === 0) f |= flags & OGG_BOS;
      if (last) f |= flags & OGG_EOS;
      out.push(this.page(f, granule, lacing, body));
      lacing = [];
      body = [];
      granule = OGG_NO_GRANULE;
    };
    for (const pkt of packets) {
      let offset = 0;
      const values = lacingValues(pkt.data.length);
      values.forEach((v, k) => {
        if (lacing.length === 255) {
          emit(false);
          continued = k > 0;
        }
        lacing.push(v);
        body.push(pkt.data.subarray(offset, offset + v));
        offset += v;
      });
      granule = pkt.granule;
    }
    emit(true);
    return Buffer.concat(out);
  }

  private page(flags: number, granule: bigint, lacing: number[], body: Uint8Array[]): Buffer {
    const header = Buffer.alloc(27 + lacing.length);
    header.write("OggS", 0, "latin1");
    header[4] = 0; // stream_structure_version
    header[5] = flags;
    header.writeBigInt64LE(granule, 6);
    header.writeUInt32LE(this.serial >>> 0, 14);
    header.writeUInt32LE(this.sequence++, 18);
    // CRC (22..25) is computed with the field zeroed, then filled in.
    header[26] = lacing.length;
    header.set(lacing, 27);
    const pageBuf = Buffer.concat([header, ...body]);
    pageBuf.writeUInt32LE(oggCrc32(pageBuf), 22);
    return pageBuf;
  }
}

export interface OggOpusWriterOptions {
  /** Bitstream serial number; pick a random 32-bit value per file. */
  serial: number;
  /** 1 or 2 (channel mapping family 0). Default 2, what browsers negotiate (stereo=1 or not). */
  channels?: 1 | 2;
  /**
   * Samples the player discards at the start; default 3840 (80 ms, RFC 7845's advice for a
   * decoder that starts cold). Rounded down to a multiple of 120 (2.5 ms, the smallest Opus
   * frame) because it is filled with concealment frames.
   */
  preSkip?: number;
  /** Written into OpusHead for information only; playback is always 48 kHz. */
  inputSampleRate?: number;
  vendor?: string;
  /** "KEY=value" user comments for OpusTags. */
  comments?: string[];
  /** Audio per page before a new page is started (48 kHz samples); default 48000 = 1 s. */
  pageSamples?: number;
  /**
   * Largest RTP timestamp gap that is filled with packet-loss-concealment frames to keep the
   * timeline; a larger jump (sender restart) is closed up instead. Default 60 s.
   */
  maxGapSamples?: number;
}

/**
 * Ogg Opus file writer (RFC 7845) fed with RTP Opus payloads.
 *
 * Granule positions come from the RTP timestamps (the Opus RTP clock is always 48 kHz): a packet
 * ends at (timestamp - first timestamp) + its own duration + pre-skip, the convention FFmpeg's
 * Ogg muxer uses too, so the file's timeline is the RTP timeline.
 *
 * A granule position counts every decoded sample, the pre-skipped ones included, so the file
 * must really contain pre-skip samples before the first RTP packet: they are written as
 * zero-length Opus frames, which a decoder conceals (cold decoder: silence) and the player then
 * discards. Without them the last granule would promise 80 ms more audio than the file holds
 * (FFmpeg then reports the duration 80 ms long), or the first 80 ms of real audio would be cut.
 * Gaps in the timestamps (losses, DTX) are filled the same way, so that the sample count always
 * matches the granule positions. Note for checks: ffprobe's duration is last granule / 48000,
 * pre-skip included (it does that for its own files too), i.e. 80 ms more than what plays.
 *
 * The last page must carry EOS, so packets are held back until a page is full and `end()`
 * writes the remainder; a crash loses at most one page (`pageSamples`) of audio.
 */
export class OggOpusWriter {
  readonly stream: OggStream;
  private readonly channels: 1 | 2;
  private readonly preSkip: number;
  private readonly options: OggOpusWriterOptions;
  private readonly unwrapper = new TimestampUnwrapper();
  /** Unwrapped RTP timestamp of sample 0 of the file. */
  private origin: number | undefined;
  /** Samples written so far after the pre-skip ones, i.e. on the RTP timeline. */
  private position = 0;
  /** Pre-skip samples written so far (all of them once the first packet is in). */
  private prefix = 0;
  private pending: OggPacket[] = [];
  private pendingSamples = 0;
  private pendingLacing = 0;
  private packets = 0;
  private state: "new" | "open" | "ended" = "new";

  constructor(options: OggOpusWriterOptions) {
    this.options = options;
    this.stream = new OggStream(options.serial);
    this.channels = options.channels ?? 2;
    const preSkip = options.preSkip ?? 3840;
    if (this.channels !== 1 && this.channels !== 2) throw new RangeError("channels must be 1 or 2");
    if (!Number.isInteger(preSkip) || preSkip < 0 || preSkip > 0xffff) {
      throw new RangeError("preSkip must be an integer in 0..65535");
    }
    this.preSkip = preSkip - (preSkip % 120);
  }

  /** Audio packets written, concealment fillers included. */
  get packetCount(): number {
    return this.packets;
  }

  /** Samples of audio written so far at 48 kHz, without pre-skip. */
  get samples(): number {
    return this.position;
  }

  /** The two header pages: OpusHead (BOS) and OpusTags. */
  begin(): Buffer {
    if (this.state !== "new") throw new Error("OggOpusWriter.begin() called twice");
    this.state = "open";
    const head = Buffer.alloc(19);
    head.write("OpusHead", 0, "latin1");
    head[8] = 1; // version
    head[9] = this.channels;
    head.writeUInt16LE(this.preSkip, 10);
    head.writeUInt32LE(this.options.inputSampleRate ?? 48000, 12);
    head.writeInt16LE(0, 16); // output gain
    head[18] = 0; // channel mapping family 0: mono or stereo, no mapping table
    const vendor = Buffer.from(this.options.vendor ?? "whipsfu", "utf8");
    const comments = (this.options.comments ?? []).map((c) => Buffer.from(c, "utf8"));
    const tags = Buffer.alloc(8 + 4 + vendor.length + 4 + comments.reduce((n, c) => n + 4 + c.length, 0));
    let o = tags.write("OpusTags", 0, "latin1");
    o = tags.writeUInt32LE(vendor.length, o);
    o += vendor.copy(tags, o);
    o = tags.writeUInt32LE(comments.length, o);
    for (const c of comments) {
      o = tags.writeUInt32LE(c.length, o);
      o += c.copy(tags, o);
    }
    return Buffer.concat([this.stream.pages([{ data: head, granule: 0n }], OGG_BOS), this.stream.pages([{ data: tags, granule: 0n }])]);
  }

  /** Adds one Opus packet; returns the pages it completes (often none). */
  packet(data: Uint8Array, rtpTimestamp: number): Buffer {
    if (this.state !== "open") throw new Error("OggOpusWriter.packet() outside begin()/end()");
    const samples = opusPacketSamples(data);
    if (samples === undefined || samples === 0) return Buffer.alloc(0); // nothing a decoder could use
    const t = this.unwrapper.unwrap(rtpTimestamp);
    const out: Buffer[] = [];
    if (this.origin === undefined) {
      this.origin = t;
      for (const filler of concealmentPackets(this.preSkip, this.channels)) {
        this.add(filler, out, opusPacketSamples(filler) ?? 0, false);
      }
    }
    const gap = t - this.origin - this.position;
    if (gap < 0 || gap > (this.options.maxGapSamples ?? 48000 * 60)) {
      // Going back in time, or a jump too long to fill: continue the timeline where it stands.
      this.origin = t - this.position;
    } else {
      for (const filler of concealmentPackets(gap, this.channels)) this.add(filler, out);
    }
    this.add(Buffer.from(data), out, samples);
    return Buffer.concat(out);
  }

  /** The remaining audio on a final page with the EOS flag. */
  end(): Buffer {
    if (this.state === "ended") return Buffer.alloc(0);
    const head = this.state === "new" ? this.begin() : Buffer.alloc(0);
    this.state = "ended";
    // With no audio at all, an empty EOS page still closes the stream properly.
    const last = this.stream.pages(this.pending, OGG_EOS);
    this.pending = [];
    return Buffer.concat([head, last]);
  }

  private add(data: Uint8Array, out: Buffer[], samples = opusPacketSamples(data) ?? 0, timeline = true): void {
    const lacing = lacingValues(data.length).length;
    // Pages end on packet boundaries where possible: FFmpeg and libopusfile seek page by page.
    const full = this.pendingSamples >= (this.options.pageSamples ?? 48000) || this.pendingLacing + lacing > 255;
    if (this.pending.length > 0 && full) {
      out.push(this.stream.pages(this.pending));
      this.pending = [];
      this.pendingSamples = 0;
      this.pendingLacing = 0;
    }
    this.pendingLacing += lacing;
    if (timeline) this.position += samples;
    this.pendingSamples += samples;
    this.packets++;
    this.prefix += timeline ? 0 : samples;
    this.pending.push({ data, granule: BigInt(this.position + this.prefix) });
  }
}

/**
 * Zero-length Opus frames covering `gap` samples (rounded down to 2.5 ms). RFC 6716 §3.2.1: a
 * frame of length 0 tells the decoder to conceal a lost frame. CELT-only fullband TOCs are used
 * because CELT offers every size down to 2.5 ms; 120 ms packets (code 3, six 20 ms frames) keep
 * long gaps cheap.
 */
export function concealmentPackets(gap: number, channels: 1 | 2): Buffer[] {
  const stereo = channels === 2 ? 0x04 : 0;
  const out: Buffer[] = [];
  let left = gap;
  while (left >= 5760) {
    out.push(Buffer.from([(31 << 3) | stereo | 3, 6]));
    left -= 5760;
  }
  // Configs 31, 30, 29, 28: CELT FB 20, 10, 5, 2.5 ms.
  for (const [config, size] of [
    [31, 960],
    [30, 480],
    [29, 240],
    [28, 120],
  ] as const) {
    while (left >= size) {
      out.push(Buffer.from([(config << 3) | stereo]));
      left -= size;
    }
  }
  return out;
}
