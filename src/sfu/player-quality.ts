// What players say about their playback (docs/api.md, "Player statistics"): each report holds the
// cumulative counters of the browser's getStats(), so a lost report loses nothing; the difference
// to the viewer's previous report is what counts. The previous report is the only thing kept, on
// the viewer object's own lifetime (a WeakMap), so it goes with the session.

/** One report, as a WHEP player posts it; every field is optional (a player sends what it has). */
export interface PlayerReport {
  /** Video freezes so far (W3C inbound-rtp freezeCount). */
  freezeCount?: number;
  /** Their total duration in seconds (totalFreezesDuration). */
  totalFreezesDuration?: number;
  framesDecoded?: number;
  framesDropped?: number;
  /** Seconds, summed over emitted frames (jitterBufferDelay), with jitterBufferEmittedCount. */
  jitterBufferDelay?: number;
  jitterBufferEmittedCount?: number;
  /** Over the viewer's audio and video. */
  packetsReceived?: number;
  packetsLost?: number;
  /** The latest round-trip time in seconds (the candidate pair's currentRoundTripTime). */
  roundTripTime?: number;
  frameWidth?: number;
  frameHeight?: number;
  /** How long the picture has been standing still right now, in seconds, as the player judges it (0 = playing). */
  frozenSeconds?: number;
}

/** A viewer frozen for longer than this (by its reports) gets a keyframe request on its behalf. */
export const FROZEN_KEYFRAME_MS = 2000;
/** At most one such request per viewer in this time, whatever the publisher's own throttle. */
export const FROZEN_KEYFRAME_REPEAT_MS = 3000;
/** A viewer whose last report is older than this no longer counts as reporting (nor as frozen). */
export const REPORT_FRESH_MS = 10_000;

/** What one report adds, as differences to the viewer's previous report. */
export interface ReportDelta {
  freezes: number;
  /** Seconds frozen in those freezes. */
  freezeSeconds: number;
  framesDecoded: number;
  framesDropped: number;
  /** Mean jitter-buffer delay per frame emitted since the previous report, seconds. */
  jitterBufferDelay?: number;
  roundTripTime?: number;
  /** Packets lost / packets expected since the previous report. */
  lossRatio?: number;
  frameHeight?: number;
  /** The picture stands still: the report says so, or frames stopped advancing since the last one. */
  frozen: boolean;
  /** For how long, in milliseconds (0 when not frozen). */
  frozenMs: number;
  /** Ask the publisher for a keyframe on this viewer's behalf. */
  keyframe: boolean;
}

/** A counter's increase; a counter that went back started again (as Prometheus reads resets). */
function increase(now: number | undefined, before: number | undefined): number {
  if (now === undefined) return 0;
  if (before === undefined || now < before) return Math.max(0, now);
  return now - before;
}

/** One viewer's reports over time: the previous one and when its frames last advanced. */
export class ViewerReports {
  private last: PlayerReport | undefined;
  private lastAt = -Infinity;
  private advancedAt = 0;
  private frozen = false;
  private keyframeAt = -Infinity;

  /** Takes a report received at `now` (ms, monotonic) and returns what it adds. */
  update(report: PlayerReport, now: number): ReportDelta {
    const prev = this.last;
    const freezes = increase(report.freezeCount, prev?.freezeCount);
    const freezeSeconds = increase(report.totalFreezesDuration, prev?.totalFreezesDuration);
    const emitted = increase(report.jitterBufferEmittedCount, prev?.jitterBufferEmittedCount);
    const buffered = increase(report.jitterBufferDelay, prev?.jitterBufferDelay);
    const received = increase(report.packetsReceived, prev?.packetsReceived);
    const lost = increase(report.packetsLost, prev?.packetsLost);

    const stalled = prev?.framesDecoded !== undefined && report.framesDecoded !== undefined && report.framesDecoded <= prev.framesDecoded;
    const since = now - (report.frozenSeconds ?? 0) * 1000;
    this.advancedAt = stalled ? Math.min(this.advancedAt, since) : since;
    const frozen = stalled || (report.frozenSeconds ?? 0) > 0;
    const frozenMs = frozen ? now - this.advancedAt : 0;
    const keyframe = frozen && frozenMs > FROZEN_KEYFRAME_MS && now - this.keyframeAt >= FROZEN_KEYFRAME_REPEAT_MS;
    if (keyframe) this.keyframeAt = now;

    this.last = report;
    this.lastAt = now;
    this.frozen = frozen;
    return {
      freezes,
      freezeSeconds,
      framesDecoded: increase(report.framesDecoded, prev?.framesDecoded),
      framesDropped: increase(report.framesDropped, prev?.framesDropped),
      ...(emitted > 0 ? { jitterBufferDelay: buffered / emitted } : {}),
      ...(report.roundTripTime !== undefined ? { roundTripTime: report.roundTripTime } : {}),
      ...(received + lost > 0 ? { lossRatio: lost / (received + lost) } : {}),
      ...(report.frameHeight ? { frameHeight: report.frameHeight } : {}),
      frozen,
      frozenMs,
      keyframe,
    };
  }

  /** Its last report is recent enough to speak for it. */
  reporting(now: number): boolean {
    return now - this.lastAt <= REPORT_FRESH_MS;
  }

  /** Its last (recent) report says the picture stands still. */
  frozenNow(now: number): boolean {
    return this.frozen && this.reporting(now);
  }
}

/** Per-room sums of the reports, for /metrics; they end with the room object. */
export interface RoomPlayerTotals {
  reports: number;
  freezes: number;
  framesDecoded: number;
  framesDropped: number;
  /** Keyframe requests made on behalf of frozen viewers. */
  keyframeRequests: number;
}

/** Distributions of the reports, handed to whoever keeps them (metrics.ts: histograms). */
export interface PlayerQualityObserver {
  observe(delta: ReportDelta): void;
}

/** What a report needs of a viewer session (a Subscriber). */
export interface ReportingViewer {
  /** Asks the publisher for a keyframe for it; false when it receives no video. */
  requestKeyframe(): boolean;
}

/** What a report needs of a room (a Room). */
export interface ReportingRoom {
  readonly subscribers: ReadonlyMap<string, object>;
}

const NO_TOTALS: Readonly<RoomPlayerTotals> = Object.freeze({ reports: 0, freezes: 0, framesDecoded: 0, framesDropped: 0, keyframeRequests: 0 });

/** Every viewer's reports and every room's sums; nothing outlives its viewer or room. */
export class PlayerQuality {
  private readonly viewers = new WeakMap<object, ViewerReports>();
  private readonly rooms = new WeakMap<ReportingRoom, RoomPlayerTotals>();
  private readonly observers: PlayerQualityObserver[] = [];

  addObserver(observer: PlayerQualityObserver): void {
    this.observers.push(observer);
  }

  /** Counts a viewer's report and, when it has been frozen too long, asks for a keyframe for it. */
  report(room: ReportingRoom, viewer: ReportingViewer, report: PlayerReport, now = performance.now()): ReportDelta {
    let reports = this.viewers.get(viewer);
    if (!reports) {
      reports = new ViewerReports();
      this.viewers.set(viewer, reports);
    }
    const delta = reports.update(report, now);
    let totals = this.rooms.get(room);
    if (!totals) {
      totals = { ...NO_TOTALS };
      this.rooms.set(room, totals);
    }
    totals.reports++;
    totals.freezes += delta.freezes;
    totals.framesDecoded += delta.framesDecoded;
    totals.framesDropped += delta.framesDropped;
    if (delta.keyframe && viewer.requestKeyframe()) totals.keyframeRequests++;
    for (const o of this.observers) o.observe(delta);
    return delta;
  }

  totals(room: ReportingRoom): Readonly<RoomPlayerTotals> {
    return this.rooms.get(room) ?? NO_TOTALS;
  }

  /** The room's viewers with a recent report, and how many of them are frozen now. */
  viewersOf(room: ReportingRoom, now = performance.now()): { reporting: number; frozen: number } {
    let reporting = 0;
    let frozen = 0;
    for (const viewer of room.subscribers.values()) {
      const reports = this.viewers.get(viewer);
      if (!reports?.reporting(now)) continue;
      reporting++;
      if (reports.frozenNow(now)) frozen++;
    }
    return { reporting, frozen };
  }
}
