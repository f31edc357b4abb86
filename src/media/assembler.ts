import type { ReorderItem } from "./reorder.js";
import type { RtpView } from "./rtp.js";

/** One whole coded frame (video) or packet (audio), ready for a container writer. */
export interface Frame {
  data: Buffer;
  /** RTP timestamp of the packets that carried it. */
  timestamp: number;
  keyframe: boolean;
  width?: number;
  height?: number;
}

export interface AssemblerOptions {
  /**
   * Called when the assembler starts dropping frames because it needs a keyframe (start of
   * stream, loss, malformed data), and again every `keyframeRetryFrames` dropped frames while it
   * keeps waiting, in case the first request was lost. The caller answers with a PLI/FIR.
   */
  onKeyframeNeeded?: () => void;
  /** Dropped frames between repeated keyframe requests; default 30 (about a second of video). */
  keyframeRetryFrames?: number;
}

export interface FrameAssembler {
  /** Feeds the next in-order packet; returns the frames it completes. */
  push(packet: RtpView): Frame[];
  /** Tells the assembler that `count` packets are missing at this point of the sequence. */
  lost(count: number): void;
  /** Convenience for ReorderBuffer output. */
  feed(item: ReorderItem<RtpView>): Frame[];
  /** End of stream: returns whatever can still be trusted (an unterminated frame cannot). */
  flush(): Frame[];
  /** True while frames are being dropped until the next keyframe. */
  readonly waitingForKeyframe: boolean;
}

/** What a codec hands back when a frame closes cleanly. */
export interface CodecFrame {
  data: Buffer;
  keyframe: boolean;
  width?: number;
  height?: number;
}

/**
 * Frame boundaries, loss handling and keyframe gating shared by the video codecs.
 *
 * A frame closes on the marker bit or when the RTP timestamp changes. Any lost packet means the
 * frame it belonged to (or a whole frame between two others) is missing, and every later inter
 * frame may reference it, so after a loss nothing is emitted until a clean keyframe: a recording
 * may freeze, but it never contains a frame the decoder would show as garbage. The same rule
 * makes a file start at a keyframe.
 */
export abstract class VideoAssembler implements FrameAssembler {
  private current: { timestamp: number; damaged: boolean } | undefined;
  private waiting = true;
  private requested = false;
  private droppedSinceRequest = 0;
  private readonly retryFrames: number;

  constructor(private readonly options: AssemblerOptions = {}) {
    this.retryFrames = options.keyframeRetryFrames ?? 30;
  }

  get waitingForKeyframe(): boolean {
    return this.waiting;
  }

  /** Resets per-frame codec state at the first packet of a new timestamp. */
  protected abstract beginFrame(): void;
  /**
   * Adds one packet to the frame in progress. `first` says it is the first packet seen for this
   * timestamp, so it must start a frame. Returns false when the payload is malformed or shows
   * that part of the frame is missing.
   */
  protected abstract addPacket(packet: RtpView, first: boolean): boolean;
  /** Completes the frame; undefined when it turns out incomplete or unusable. */
  protected abstract endFrame(): CodecFrame | undefined;

  push(packet: RtpView): Frame[] {
    const out: Frame[] = [];
    if (this.current && packet.timestamp !== this.current.timestamp) this.close(out);
    let first = false;
    if (!this.current) {
      this.current = { timestamp: packet.timestamp, damaged: false };
      this.beginFrame();
      first = true;
    }
    if (!this.current.damaged && !this.addPacket(packet, first)) this.current.damaged = true;
    if (packet.marker) this.close(out);
    return out;
  }

  lost(count: number): void {
    if (count <= 0) return;
    if (this.current) this.current.damaged = true;
    this.needKeyframe();
  }

  feed(item: ReorderItem<RtpView>): Frame[] {
    if (item.type === "lost") {
      this.lost(item.count);
      return [];
    }
    return this.push(item.packet);
  }

  flush(): Frame[] {
    // Without its marker packet a frame may be missing its tail: drop it rather than guess.
    this.current = undefined;
    return [];
  }

  private close(out: Frame[]): void {
    const cur = this.current;
    this.current = undefined;
    if (!cur) return;
    const frame = cur.damaged ? undefined : this.endFrame();
    if (!frame) {
      this.needKeyframe();
      return;
    }
    if (this.waiting) {
      if (!frame.keyframe) {
        this.needKeyframe();
        return;
      }
      this.waiting = false;
      this.requested = false;
    }
    out.push({ ...frame, timestamp: cur.timestamp });
  }

  private needKeyframe(): void {
    this.waiting = true;
    if (this.requested && ++this.droppedSinceRequest < this.retryFrames) return;
    this.requested = true;
    this.droppedSinceRequest = 0;
    this.options.onKeyframeNeeded?.();
  }
}
