// Domain errors the HTTP layer maps to statuses; messages are the spec's, verbatim.

export type SfuErrorCode =
  | "invalid-sdp"
  | "publisher-exists"
  | "no-publisher"
  | "subscriber-limit"
  | "unsupported-codec"
  | "room-not-found"
  | "session-not-found"
  | "capacity";

const STATUS: Record<SfuErrorCode, number> = {
  "invalid-sdp": 400,
  "publisher-exists": 409,
  "no-publisher": 404,
  "subscriber-limit": 403,
  "unsupported-codec": 422,
  "room-not-found": 404,
  "session-not-found": 404,
  capacity: 503,
};

export class SfuError extends Error {
  readonly status: number;
  constructor(
    readonly code: SfuErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "SfuError";
    this.status = STATUS[code];
  }
}

export const errors = {
  invalidSdp: () => new SfuError("invalid-sdp", "invalid SDP"),
  publisherExists: () => new SfuError("publisher-exists", "publisher already exists in this room"),
  noPublisher: () => new SfuError("no-publisher", "no active publisher in room"),
  subscriberLimit: () => new SfuError("subscriber-limit", "subscriber limit reached"),
  roomNotFound: () => new SfuError("room-not-found", "room not found"),
  sessionNotFound: () => new SfuError("session-not-found", "session not found"),
  unsupportedCodec: (message: string) => new SfuError("unsupported-codec", message),
  /** RFC 9725 §4.6: a server out of capacity answers 503 with Retry-After. */
  capacity: (what: string) => new SfuError("capacity", `server at capacity: ${what}`),
};
