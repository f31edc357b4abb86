import { RoomEventBus } from "./events.js";
import type { PublishedTrack } from "./publisher.js";
import type { EndReason } from "./session.js";
import type { Subscriber } from "./subscriber.js";
import type { RoomSource } from "./types.js";

/** Something a room feeds besides subscribers: a recorder, an egress bridge. */
export interface TrackConsumer {
  /** Finishes its work (a recorder finalises its file); the room awaits it. */
  close(): void | Promise<void>;
}

/** Makes the consumers of one published track (e.g. a recorder per track); returns undefined to skip it. */
export type TrackConsumerFactory = (room: Room, track: PublishedTrack) => TrackConsumer | undefined;

export class Room {
  readonly createdAt = new Date();
  publisher: RoomSource | undefined;
  readonly subscribers = new Map<string, Subscriber>();
  /** Subscribes in progress, counted against the per-room cap. */
  pendingSubscribers = 0;
  /** What its viewers are told (WHEP events). */
  readonly events = new RoomEventBus();
  private consumers: TrackConsumer[] = [];
  private closed = false;

  constructor(readonly name: string) {}

  get isClosed(): boolean {
    return this.closed;
  }

  attachConsumers(factories: TrackConsumerFactory[]): void {
    if (!this.publisher) return;
    for (const track of this.publisher.tracks) {
      for (const make of factories) {
        const consumer = make(this, track);
        if (consumer) this.consumers.push(consumer);
      }
    }
  }

  /** Closes the consumers of the room's tracks, which a codec change makes anew (a recording's next part). */
  async closeConsumers(): Promise<void> {
    const consumers = this.consumers;
    this.consumers = [];
    await Promise.all(
      consumers.map((c) =>
        Promise.resolve()
          .then(() => c.close())
          .catch(() => undefined),
      ),
    );
  }

  /** Ends the room: its publisher, then every subscriber, then recorders and bridges; once. */
  async close(reason: EndReason): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending: Promise<void>[] = [];
    if (this.publisher) pending.push(this.publisher.close(reason));
    const subReason: EndReason = reason === "admin-close" || reason === "shutdown" ? reason : "publisher-left";
    for (const s of this.subscribers.values()) pending.push(s.close(subReason));
    for (const c of this.consumers) {
      // One consumer failing to close must not keep the others open.
      pending.push(
        Promise.resolve()
          .then(() => c.close())
          .catch(() => undefined),
      );
    }
    this.consumers = [];
    this.events.close();
    await Promise.all(pending);
  }
}
