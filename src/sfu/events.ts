// What a room tells its viewers while they watch (the WHEP server-sent events extension,
// docs/api.md, "WHEP events"): media started or stopped, how many watch, the simulcast layers,
// and that a given viewer must reconnect. The room emits; each event stream listens.
import type { LayerState } from "./simulcast.js";

export type RoomEvent =
  | { type: "active" }
  | { type: "inactive" }
  | { type: "viewercount"; viewercount: number }
  | { type: "layers"; layers: LayerState[] }
  /** For one viewer (`session`), or every viewer when absent (the server drains). */
  | { type: "reconnect"; session?: string };

export type RoomEventType = RoomEvent["type"];

export const ROOM_EVENT_TYPES: readonly RoomEventType[] = ["active", "inactive", "layers", "reconnect", "viewercount"];

/** A room's events, delivered synchronously to each listener in the order emitted. */
export class RoomEventBus {
  private listeners: ((event: RoomEvent) => void)[] = [];

  /** Returns the function that stops listening. */
  on(listener: (event: RoomEvent) => void): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  emit(event: RoomEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // One broken stream must not keep the others from hearing.
      }
    }
  }

  close(): void {
    this.listeners = [];
  }
}
