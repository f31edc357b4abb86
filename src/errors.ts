// The one error model of the core. Code below src/http says *what* went wrong (a kind) and in
// words a client may read (the message); only src/http/errors.ts turns a kind into an HTTP status.

/** What went wrong, independent of the transport that reports it. */
export type ErrorKind =
  /** The request itself is malformed or violates a documented rule (bad SDP, bad URL, bad field). */
  | "invalid_input"
  /** Credentials are missing or wrong. */
  | "unauthorized"
  /** Credentials are fine but the action is refused (a hook said no, a per-room limit). */
  | "forbidden"
  /** The named room, session, job or file does not exist. */
  | "not_found"
  /** The action clashes with current state (a room already has a publisher, a job already runs). */
  | "conflict"
  /** The offer or source carries no codec this server can forward or bridge. */
  | "unsupported_codec"
  /** The server is out of a resource (rooms, sessions, ports, FFmpeg jobs); retry later. */
  | "capacity"
  /** The server is closing; nothing new starts. */
  | "shutting_down"
  /** A process the action needs (FFmpeg) did not start, or its output cannot be written; the message says why. */
  | "start_failed";

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DomainError";
  }
}

/** True when `err` is a DomainError, and of `kind` when one is given. */
export function isDomainError(err: unknown, kind?: ErrorKind): err is DomainError {
  return err instanceof DomainError && (kind === undefined || err.kind === kind);
}

/** The usual way to throw: `throw fail("not_found", "room not found")`. */
export function fail(kind: ErrorKind, message: string, options?: ErrorOptions): DomainError {
  return new DomainError(kind, message, options);
}
