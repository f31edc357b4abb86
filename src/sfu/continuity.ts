// A room's media as one continuous stream while the sources feeding it change: a publisher that
// reconnects within the grace, a hot-standby backup taking over from a silent primary and handing
// back. Viewers, recorders and bridges hang on the room's own tracks, which outlive every source;
// each source track's packets are diverted into a splice that forwards only the live source's,
// with SSRC, sequence numbers and timestamps carried on across a switch (the technique
// simulcast.ts uses between layers), so a viewer's decoder sees one stream on the same
// RTCPeerConnection. docs/media.md, "Publisher reconnects and hot standby".

import type { RtpPacket } from "werift";
import { startsKeyframe } from "../media/keyframe.js";
import { isNewer, seqAdd, wrapSeq } from "../media/sequence.js";
import { TrackFanout } from "./forward.js";
import { KeyframeRequester } from "./keyframes.js";
import type { PublishedTrack } from "./publisher.js";
import { codecMatches, describeCodec } from "./sdp.js";
import type { EndReason } from "./session.js";
import type { LayerState, SimulcastSelector } from "./simulcast.js";
import type { RoomSource } from "./types.js";

export type SourceRole = "primary" | "backup";

/** How often the live source's health is checked (failover, switch back, active/inactive). */
const CHECK_MS = 100;
/** A primary that is back must send this long without a gap before it is switched back to. */
export const RECOVER_MS = 3000;
/** Video packets of a warm source's current GOP kept for an instant switch; a longer GOP is not kept. */
const WARM_GOP_PACKETS = 1024;

/** One source track as a splice sees it. */
interface Feed {
  readonly source: RoomSource;
  readonly track: PublishedTrack;
  /** performance.now() of its last packet; -Infinity before the first. */
  lastAt: number;
  /** Video of a feed not forwarded: its packets since its last keyframe, so a switch to it need not wait for the next. */
  gop: RtpPacket[];
  gopTimestamp: number;
}

/**
 * One room track fed by the tracks of successive sources. Forwards the current feed's packets;
 * a feed switched to takes over at its first keyframe (video) or packet (audio), numbered one past
 * the last packet sent and timestamped by the time that has passed. Runs on the forwarding path:
 * no await, no logging, no allocation per packet.
 */
export class TrackSplice {
  private current: Feed | undefined;
  private next: Feed | undefined;
  private seqOffset = 0;
  private tsOffset = 0;
  private lastSeq = -1;
  private lastTs = 0;
  private lastAt = 0;
  private outSsrc = 0;
  /** The current feed's (own) sequence number it was switched to at: older packets are not forwarded. */
  private switchSeq = -1;
  /** Told when a feed's first packet goes out after a switch (not per packet). */
  onSpliced: (source: RoomSource) => void = () => undefined;

  constructor(readonly track: PublishedTrack) {}

  /** Starts taking a source track's packets; they go out once the feed is switched to. */
  attach(source: RoomSource, track: PublishedTrack): Feed {
    const feed: Feed = { source, track, lastAt: -Infinity, gop: [], gopTimestamp: -1 };
    track.fanout.divert((packet) => this.write(feed, packet));
    return feed;
  }

  detach(feed: Feed): void {
    feed.track.fanout.divert(undefined);
    feed.gop = [];
    if (this.current === feed) this.current = undefined;
    if (this.next === feed) this.next = undefined;
  }

  /** The feed whose packets go out, or undefined. */
  get live(): Feed | undefined {
    return this.current;
  }

  /**
   * Makes `feed` the one forwarded: at once from its last keyframe when it was kept warm, else
   * from its next keyframe, which is asked for now.
   */
  switchTo(feed: Feed): void {
    if (feed === this.current) {
      this.next = undefined;
      return;
    }
    this.next = feed;
    const gop = feed.gop;
    if (gop.length === 0) {
      feed.track.keyframes.request();
      return;
    }
    feed.gop = [];
    const first = gop[0]!.header;
    const now = performance.now();
    this.splice(feed, first.sequenceNumber, first.timestamp, first.ssrc, now);
    for (const packet of gop) this.send(packet, now);
  }

  /** A keyframe request of the room track goes to the feed being switched to, else the current one. */
  requestKeyframe(): void {
    (this.next ?? this.current)?.track.keyframes.request();
  }

  write(feed: Feed, packet: RtpPacket): void {
    const header = packet.header;
    const now = performance.now();
    feed.lastAt = now;
    if (feed !== this.current) {
      // Padding-only probes are kept in a warm GOP too: the room track's fan-out drops and
      // renumbers around them, as for the packets of the current feed.
      const keyframe = packet.payload.length > 0 && (this.track.kind === "audio" || startsKeyframe(this.track.codecName, packet.payload));
      if (this.track.kind === "video") this.keepWarm(feed, packet, keyframe);
      if (feed !== this.next || !keyframe) return;
      feed.gop = [];
      this.splice(feed, header.sequenceNumber, header.timestamp, header.ssrc, now);
    } else if (isNewer(this.switchSeq, header.sequenceNumber)) {
      return; // from before the keyframe this feed was switched to
    }
    this.send(packet, now);
  }

  /** Keeps a video feed's packets from its last keyframe while it is not forwarded. */
  private keepWarm(feed: Feed, packet: RtpPacket, keyframe: boolean): void {
    const ts = packet.header.timestamp;
    // A keyframe may start with several "starting" packets (H.264 SPS, then the IDR): one GOP.
    if (keyframe && ts !== feed.gopTimestamp) {
      feed.gop = [packet];
      feed.gopTimestamp = ts;
    } else if (feed.gop.length > 0) {
      if (feed.gop.length < WARM_GOP_PACKETS) feed.gop.push(packet);
      else feed.gop = [];
    }
  }

  /** Rewrites a packet of the current feed into the room track's numbering and forwards it. */
  private send(packet: RtpPacket, now: number): void {
    const header = packet.header;
    header.sequenceNumber = seqAdd(header.sequenceNumber, this.seqOffset);
    header.timestamp = (header.timestamp + this.tsOffset) >>> 0;
    header.ssrc = this.outSsrc;
    if (this.lastSeq < 0 || isNewer(header.sequenceNumber, this.lastSeq)) {
      this.lastSeq = header.sequenceNumber;
      this.lastTs = header.timestamp;
      this.lastAt = now;
    }
    this.track.fanout.forward(packet);
  }

  private splice(feed: Feed, seq: number, timestamp: number, ssrc: number, now: number): void {
    if (this.lastSeq < 0) {
      // The first source: its numbers go out as they are.
      this.seqOffset = 0;
      this.tsOffset = 0;
      this.outSsrc = ssrc;
    } else {
      this.seqOffset = wrapSeq(this.lastSeq + 1 - seq);
      const elapsed = Math.max(1, Math.round(((now - this.lastAt) * this.track.codec.clockRate) / 1000));
      this.tsOffset = (this.lastTs + elapsed - timestamp) >>> 0;
    }
    // The new source numbers its extensions its own way.
    if (feed.track.sourceExtensions) this.track.fanout.history.setSourceExtensions(feed.track.sourceExtensions);
    this.switchSeq = seq;
    this.current = feed;
    this.next = undefined;
    this.onSpliced(feed.source);
  }

  close(): void {
    for (const feed of [this.current, this.next]) if (feed) feed.track.fanout.divert(undefined);
    this.current = undefined;
    this.next = undefined;
    this.track.keyframes.close();
    this.track.fanout.close();
  }
}

/** What a room's source does, for events, hooks and /metrics; called after the fact. */
export interface ContinuityListener {
  /** Media started (true) or stopped (false) reaching the room's viewers. */
  activeChanged(active: boolean): void;
  /** The live source changed from one role to the other while both were attached. */
  switched(to: SourceRole, reason: "failover" | "recovered" | "ended"): void;
}

export interface ContinuousSourceOptions {
  /** Video packets kept from the last keyframe for joiners (see TrackFanout). */
  gopCachePackets: number;
  /** A live primary silent this long hands over to a warm backup. */
  failoverMs: number;
  listener?: ContinuityListener;
}

interface Attached {
  source: RoomSource;
  role: SourceRole;
  feeds: Feed[];
}

/** The room tracks' codecs that `source` cannot continue (same kind, other codec), by description. */
export function mismatchedTracks(tracks: readonly PublishedTrack[], source: RoomSource): PublishedTrack[] {
  return tracks.filter((t) => {
    const other = source.tracks.find((s) => s.kind === t.kind);
    return other !== undefined && !codecMatches(t.codec, other.codec);
  });
}

/** A description of a source's codecs for messages ("VP8, opus"). */
export function codecsOf(source: RoomSource): string {
  return source.tracks.map((t) => describeCodec(t.codec)).join(", ");
}

/**
 * The room's one source as its viewers, recorders and bridges see it (a RoomSource whose tracks
 * live as long as the room), fed by a primary and optionally a warm backup. Lifecycle: made with
 * the room's first source, fed by attach/detach as sources come and go, closed with the room.
 */
export class ContinuousSource implements RoomSource {
  private trackList: PublishedTrack[] = [];
  private splices: TrackSplice[] = [];
  private readonly attached: Attached[] = [];
  private liveRole: SourceRole | undefined;
  private active = false;
  /** performance.now() since which the primary has been sending without a gap, while the backup is live. */
  private primaryHealthySince: number | undefined;
  private ended: { packets: number; bytes: number } = { packets: 0, bytes: 0 };
  private isClosed = false;
  private readonly endListeners: ((reason: EndReason) => void)[] = [];
  private readonly timer: NodeJS.Timeout;
  /** Switches from primary to backup, for /metrics. */
  failovers = 0;

  constructor(
    first: RoomSource,
    private readonly opts: ContinuousSourceOptions,
  ) {
    this.buildTracks(first);
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  get id(): string {
    return this.sourceOf(this.liveRole ?? "primary")?.id ?? "";
  }

  get tracks(): PublishedTrack[] {
    return this.trackList;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get packets(): number {
    return this.attached.reduce((n, a) => n + a.source.packets, this.ended.packets);
  }

  get bytes(): number {
    return this.attached.reduce((n, a) => n + a.source.bytes, this.ended.bytes);
  }

  /** The role whose media is forwarded now (undefined: none attached, e.g. in the grace). */
  get live(): SourceRole | undefined {
    return this.liveRole;
  }

  /** True while media reaches the room's viewers. */
  get isActive(): boolean {
    return this.active;
  }

  sourceOf(role: SourceRole): RoomSource | undefined {
    return this.attached.find((a) => a.role === role)?.source;
  }

  /**
   * True when the source in `role` sent media and then nothing for the failover time (it
   * vanished, or its encoder stalled). One still connecting is not silent.
   */
  isSilent(role: SourceRole): boolean {
    const last = ContinuousSource.lastAt(this.attached.find((x) => x.role === role));
    return last > -Infinity && performance.now() - last >= this.opts.failoverMs;
  }

  /** Whether a source of either role feeds the room. */
  get hasSource(): boolean {
    return this.attached.length > 0;
  }

  /** Whether a source other than `source` feeds the room. */
  hasSourceOtherThan(source: RoomSource | undefined): boolean {
    return this.attached.some((a) => a.source !== source);
  }

  /**
   * Adds a source in a role that is free. A primary joining a room with nothing live, or any
   * source joining an empty room, is switched to at once; a primary coming back while its backup
   * is live takes over once healthy (RECOVER_MS); a backup stays warm.
   */
  attach(source: RoomSource, role: SourceRole): void {
    if (this.isClosed) return;
    if (this.sourceOf(role)) throw new Error(`room already has a ${role}`);
    const feeds: Feed[] = [];
    for (const splice of this.splices) {
      const track = source.tracks.find((t) => t.kind === splice.track.kind);
      if (track && codecMatches(splice.track.codec, track.codec)) feeds.push(splice.attach(source, track));
    }
    this.attached.push({ source, role, feeds });
    if (this.liveRole === undefined) this.switchTo(role);
  }

  /** Removes a source (it ended); the other role, when attached, takes over at once. */
  detach(source: RoomSource): void {
    const i = this.attached.findIndex((a) => a.source === source);
    if (i < 0) return;
    const [gone] = this.attached.splice(i, 1);
    this.ended.packets += source.packets;
    this.ended.bytes += source.bytes;
    for (const feed of gone!.feeds) this.spliceOf(feed)?.detach(feed);
    if (this.liveRole !== gone!.role) return;
    this.liveRole = undefined;
    this.setActive(false);
    const other = this.attached[0];
    if (other) {
      this.switchTo(other.role);
      this.opts.listener?.switched(other.role, "ended");
      if (other.role === "backup") this.failovers++;
    }
  }

  /**
   * A source of other codecs starts over: the room's tracks are made anew from it (their old ones
   * closed), for a room with no source attached. Returns the tracks replaced.
   */
  rebuild(source: RoomSource): PublishedTrack[] {
    if (this.attached.length > 0) throw new Error("rebuild with sources attached");
    const old = this.trackList;
    for (const s of this.splices) s.close();
    this.buildTracks(source);
    return old;
  }

  private buildTracks(source: RoomSource): void {
    this.splices = source.tracks.map((t) => {
      let splice: TrackSplice | undefined;
      const keyframes = new KeyframeRequester(() => splice?.requestKeyframe());
      const fanout = new TrackFanout(t.kind, t.codecName, () => keyframes.request(), t.kind === "video" ? this.opts.gopCachePackets : 0);
      const track: PublishedTrack = {
        kind: t.kind,
        codecName: t.codecName,
        codec: t.codec,
        index: t.index,
        fanout,
        keyframes,
        get simulcast(): SimulcastSelector | undefined {
          return splice?.live?.track.simulcast;
        },
      };
      splice = new TrackSplice(track);
      splice.onSpliced = (from) => this.spliced(from);
      return splice;
    });
    this.trackList = this.splices.map((s) => s.track);
  }

  /** Simulcast layers of the live source's video, for /api/rooms and the `layers` event. */
  get layers(): LayerState[] | undefined {
    const states = this.trackList.find((t) => t.simulcast)?.simulcast?.layerStates;
    return states && states.length > 0 ? states : undefined;
  }

  private spliceOf(feed: Feed): TrackSplice | undefined {
    return this.splices.find((s) => s.track.kind === feed.track.kind);
  }

  private switchTo(role: SourceRole): void {
    const entry = this.attached.find((a) => a.role === role);
    if (!entry) return;
    this.liveRole = role;
    this.primaryHealthySince = undefined;
    for (const feed of entry.feeds) this.spliceOf(feed)?.switchTo(feed);
  }

  /** A switch took effect on one of the room's tracks: media flows again. Deferred off the forwarding path. */
  private spliced(source: RoomSource): void {
    if (this.active || this.isClosed) return;
    setImmediate(() => {
      if (this.sourceOf(this.liveRole ?? "primary") === source) this.setActive(true);
    });
  }

  private setActive(active: boolean): void {
    if (this.active === active || (active && this.isClosed)) return;
    this.active = active;
    this.opts.listener?.activeChanged(active);
  }

  /** The newest packet of a source, over its tracks. */
  private static lastAt(a: Attached | undefined): number {
    if (!a) return -Infinity;
    return a.feeds.reduce((t, f) => Math.max(t, f.lastAt), -Infinity);
  }

  /** Failover, switch back and active/inactive, from the sources' last packets. */
  private check(): void {
    if (this.isClosed || this.liveRole === undefined) return;
    const now = performance.now();
    const primary = this.attached.find((a) => a.role === "primary");
    const backup = this.attached.find((a) => a.role === "backup");
    const fresh = (a: Attached | undefined): boolean => now - ContinuousSource.lastAt(a) < this.opts.failoverMs;
    // A primary still connecting has not failed: only one that sent and stopped hands over.
    const primaryFailed = primary !== undefined ? !fresh(primary) && ContinuousSource.lastAt(primary) > -Infinity : true;
    const live = this.liveRole === "primary" ? primary : backup;
    if (fresh(live) && !this.active && this.splices.some((s) => s.live !== undefined && s.live.source === live!.source)) this.setActive(true);
    if (this.liveRole === "primary") {
      if (!primaryFailed) return;
      this.setActive(false);
      if (backup && fresh(backup)) {
        this.failovers++;
        this.switchTo("backup");
        this.opts.listener?.switched("backup", "failover");
      }
      return;
    }
    // The backup is live.
    if (!fresh(backup)) this.setActive(false);
    if (!primary) return;
    // Healthy: no gap in its media as long as would have failed it over.
    if (!fresh(primary)) {
      this.primaryHealthySince = undefined;
      return;
    }
    this.primaryHealthySince ??= now;
    if (now - this.primaryHealthySince >= RECOVER_MS || !fresh(backup)) {
      this.switchTo("primary");
      this.opts.listener?.switched("primary", "recovered");
    }
  }

  /** Closes every attached source and the room's tracks; once. */
  async close(reason: EndReason): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    clearInterval(this.timer);
    const sources = this.attached.map((a) => a.source);
    for (const s of this.splices) s.close();
    for (const l of this.endListeners) {
      try {
        l(reason);
      } catch {
        // A listener's failure must not keep the room's tracks open.
      }
    }
    await Promise.all(sources.map((s) => s.close(reason)));
  }

  onEnd(listener: (reason: EndReason) => void): void {
    this.endListeners.push(listener);
  }
}
