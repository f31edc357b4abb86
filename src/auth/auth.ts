// Who may do what: room tokens, the global token, JWT grants, admin (docs/api.md#authentication).
// Pure: no fastify, no logging (tokens are never logged anywhere in here), never throws on what a
// client sends.
//
// The credential kinds are tried in order (room token, global token, JWT) and the token is
// accepted as soon as one of them matches; a configured kind that does not match does not end the
// search. So a ROOM_TOKENS entry for R is an *additional* way into R, tried first — AUTH_TOKEN and
// a JWT for R still work there: the order is one of attempts, not of exclusions, and an operator
// adding a per-room token would not expect to lock out the global token.
// A room token opens only its own room. ADMIN_TOKEN is for the admin routes and for reading
// recordings/HLS; it is not a publish/subscribe credential.
import type { KeyObject } from "node:crypto";
import { jwtKey, verifyJwt, type JwtGrant } from "./jwt.js";
import { digest, digestEquals } from "./token.js";

export { extractToken } from "./token.js";
export { MAX_JWT_LENGTH, CLOCK_TOLERANCE_SECONDS, type JwtGrant } from "./jwt.js";

export type Action = "publish" | "subscribe";

export interface AuthSettings {
  authToken?: string;
  roomTokens: Map<string, string>;
  jwtSecret?: string;
  adminToken?: string;
}

export interface AuthorizerOptions {
  /** Current time in seconds for exp/nbf checks (tests); defaults to the system clock. */
  now?: () => number;
}

function configured(s: string | undefined): s is string {
  return typeof s === "string" && s !== "";
}

export class Authorizer {
  /** Any of ROOM_TOKENS / AUTH_TOKEN / JWT_SECRET configured; otherwise publish/subscribe/read are open. */
  readonly enabled: boolean;
  /** ADMIN_TOKEN or JWT_SECRET configured; otherwise the admin routes refuse everyone. */
  readonly adminEnabled: boolean;

  private readonly roomDigests = new Map<string, Buffer>();
  private readonly globalDigest?: Buffer;
  private readonly adminDigest?: Buffer;
  private readonly jwtKey?: KeyObject;
  private readonly now?: () => number;

  constructor(settings: AuthSettings, options: AuthorizerOptions = {}) {
    for (const [room, token] of settings.roomTokens ?? []) {
      if (configured(token)) this.roomDigests.set(room, digest(token));
    }
    if (configured(settings.authToken)) this.globalDigest = digest(settings.authToken);
    if (configured(settings.adminToken)) this.adminDigest = digest(settings.adminToken);
    if (configured(settings.jwtSecret)) this.jwtKey = jwtKey(settings.jwtSecret);
    this.now = options.now;
    this.enabled = this.roomDigests.size > 0 || this.globalDigest !== undefined || this.jwtKey !== undefined;
    this.adminEnabled = this.adminDigest !== undefined || this.jwtKey !== undefined;
  }

  /** May `token` do `action` in `room`? Always true when auth is disabled. */
  allows(token: string | undefined, room: string, action: Action): boolean {
    if (!this.enabled) return true;
    if (!usable(token)) return false;
    const d = digest(token);
    // 1. room token: only the entry for this room.
    const roomDigest = this.roomDigests.get(room);
    if (roomDigest !== undefined && digestEquals(d, roomDigest)) return true;
    // 2. global token.
    if (this.globalDigest !== undefined && digestEquals(d, this.globalDigest)) return true;
    // 3. JWT whose claims cover the room and the action.
    const grant = this.grant(token);
    return grant !== undefined && grantCovers(grant, room) && grant[action];
  }

  /**
   * Admin routes: ADMIN_TOKEN, or a JWT with `admin` among its permissions (or role admin).
   * A JWT scoped to one room is admin for that room only: pass the room the action concerns;
   * without `room` (an action over every room) only an every-room admin JWT qualifies.
   * Refused for everyone when neither ADMIN_TOKEN nor JWT_SECRET is configured, even with auth off.
   */
  allowsAdmin(token: string | undefined, room?: string): boolean {
    if (!this.adminEnabled || !usable(token)) return false;
    if (this.adminDigest !== undefined && digestEquals(digest(token), this.adminDigest)) return true;
    const grant = this.grant(token);
    return grant?.admin === true && (grant.room === undefined || grant.room === room);
  }

  /**
   * Reading recordings / HLS of a room: any token that could subscribe to it, or the global/admin
   * token. room undefined = listing everything: the global or admin token, or a JWT for every room
   * that may subscribe (or is admin). Always true when auth is disabled.
   */
  allowsRead(token: string | undefined, room: string | undefined): boolean {
    if (!this.enabled) return true;
    if (!usable(token)) return false;
    const d = digest(token);
    if (this.globalDigest !== undefined && digestEquals(d, this.globalDigest)) return true;
    if (this.adminDigest !== undefined && digestEquals(d, this.adminDigest)) return true;
    if (room !== undefined) return this.allows(token, room, "subscribe");
    const grant = this.grant(token);
    return grant !== undefined && grant.room === undefined && grant.subscribe;
  }

  private grant(token: string): JwtGrant | undefined {
    if (this.jwtKey === undefined) return undefined;
    return verifyJwt(token, this.jwtKey, this.now?.());
  }
}

function usable(token: string | undefined): token is string {
  return typeof token === "string" && token !== "";
}

function grantCovers(grant: JwtGrant, room: string): boolean {
  return grant.room === undefined || grant.room === room;
}

/** Constant-time check of a presented token against one configured secret (e.g. METRICS_TOKEN). */
export function tokenMatches(token: string | undefined, secret: string): boolean {
  return token !== undefined && digestEquals(digest(token), digest(secret));
}
