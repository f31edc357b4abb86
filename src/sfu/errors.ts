// The SFU's failures as domain errors; the messages are the API's, word for word (docs/api.md).

import { fail } from "../errors.js";

export const errors = {
  invalidSdp: () => fail("invalid_input", "invalid SDP"),
  publisherExists: () => fail("conflict", "publisher already exists in this room"),
  noPublisher: () => fail("not_found", "no active publisher in room"),
  subscriberLimit: () => fail("forbidden", "subscriber limit reached"),
  roomNotFound: () => fail("not_found", "room not found"),
  sessionNotFound: () => fail("not_found", "session not found"),
  unsupportedCodec: (message: string) => fail("unsupported_codec", message),
  /** Out of rooms, sessions or ports (RFC 9725 §4.6: the API says so with 503 and Retry-After). */
  capacity: (what: string) => fail("capacity", `server at capacity: ${what}`),
};
