// Nouns that both a room and its members need, kept apart from either so that neither imports the
// other back: room.ts holds a RoomSource and its Subscribers, subscriber.ts reads the tracks of a
// RoomSource.
import type { PublishedTrack } from "./publisher.js";
import type { EndReason } from "./session.js";

/**
 * What feeds a room: a WebRTC publisher (WHIP), or plain RTP from an ingest (FFmpeg pulling
 * RTMP/HLS/files). Subscribers, recorders and bridges only ever see its tracks.
 */
export interface RoomSource {
  readonly id: string;
  readonly tracks: PublishedTrack[];
  readonly closed: boolean;
  /** RTP received, for /metrics. */
  readonly packets: number;
  readonly bytes: number;
  close(reason: EndReason): Promise<void>;
  onEnd(listener: (reason: EndReason) => void): void;
}
