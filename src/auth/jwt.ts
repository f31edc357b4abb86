// JWT grants: verify with JWT_SECRET (HS256 only) and turn the claims into what they allow.
// Pure: no fastify, no logging. Never throws: anything hostile or malformed grants nothing.
import { createSecretKey, type KeyObject } from "node:crypto";
import jwt from "jsonwebtoken";
import { ROOM_NAME_RE } from "../config.js";

/** Tokens longer than this are refused before any parsing (a real grant is a few hundred bytes). */
export const MAX_JWT_LENGTH = 8 * 1024;
/** Leeway for `exp` / `nbf` against clock skew between the issuer and this server. */
export const CLOCK_TOLERANCE_SECONDS = 5;

// header.payload.signature, base64url; the signature may be empty only to be refused by verify.
const JWT_SHAPE_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface JwtGrant {
  /** The one room the token is for; undefined = every room (`room` absent or "*"). */
  room?: string;
  publish: boolean;
  subscribe: boolean;
  admin: boolean;
}

export function jwtKey(secret: string): KeyObject {
  return createSecretKey(Buffer.from(secret, "utf8"));
}

function own(o: object, k: string): unknown {
  return Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined;
}

/**
 * `permissions` if present, else `role`: a string or an array of strings among publish, subscribe,
 * admin (admin implies both). Both absent = publish and subscribe. Present but of another type
 * (null, number, object, an array holding a non-string) = nothing; unknown names are ignored.
 */
function parsePermissions(payload: object): Pick<JwtGrant, "publish" | "subscribe" | "admin"> | undefined {
  const hasPerm = Object.hasOwn(payload, "permissions");
  const raw = hasPerm ? own(payload, "permissions") : own(payload, "role");
  if (!hasPerm && !Object.hasOwn(payload, "role")) {
    return { publish: true, subscribe: true, admin: false };
  }
  let list: string[];
  if (typeof raw === "string") list = [raw];
  else if (Array.isArray(raw) && raw.length <= 16 && raw.every((p): p is string => typeof p === "string")) list = raw;
  else return undefined;
  const admin = list.includes("admin");
  return {
    admin,
    publish: admin || list.includes("publish"),
    subscribe: admin || list.includes("subscribe"),
  };
}

/** The grant of a token signed with `key`, or undefined when it is not a valid, current JWT. */
export function verifyJwt(token: string, key: KeyObject, nowSeconds?: number): JwtGrant | undefined {
  if (token.length > MAX_JWT_LENGTH || !JWT_SHAPE_RE.test(token)) return undefined;
  let payload: unknown;
  try {
    payload = jwt.verify(token, key, {
      algorithms: ["HS256"],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      ...(nowSeconds !== undefined ? { clockTimestamp: nowSeconds } : {}),
    });
  } catch {
    return undefined;
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return undefined;

  const roomClaim = own(payload, "room");
  let room: string | undefined;
  if (roomClaim === undefined || roomClaim === "*") room = undefined;
  else if (typeof roomClaim === "string" && ROOM_NAME_RE.test(roomClaim)) room = roomClaim;
  else return undefined;

  const perms = parsePermissions(payload);
  if (perms === undefined) return undefined;
  return { room, ...perms };
}
