// Where a request's token comes from, and how secrets are compared. Pure: no fastify, no logging.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

type Headers = Record<string, string | string[] | undefined>;

/** A header by name, case-insensitively (Node lower-cases names, hand-built records may not). */
function header(headers: Headers, lowerName: string): string | undefined {
  let v = headers[lowerName];
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === lowerName) {
        v = headers[k];
        break;
      }
    }
  }
  // A repeated header is ambiguous: use it only when every copy says the same thing.
  if (Array.isArray(v)) {
    const first = v[0];
    if (first === undefined || !v.every((x) => x === first)) return undefined;
    v = first;
  }
  return typeof v === "string" ? v : undefined;
}

// RFC 6750 §2.1: `Bearer` (any case), then whitespace, then one credential without spaces.
const BEARER_RE = /^[ \t]*bearer[ \t]+(\S+)[ \t]*$/i;

function clean(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === "" ? undefined : t;
}

/**
 * Token sources in the documented order (docs/api.md#authentication): `Authorization: Bearer <t>`,
 * then `X-Auth-Token: <t>`, then (only when allowQuery, i.e. GET of media files a browser element
 * fetches) `?token=`.
 * The first source that carries a well-formed token wins, even if a later source has a different
 * one; an Authorization header of another scheme (Basic …) or a malformed one (`Bearer` alone,
 * `Bearer a b`) is not a token source and the next source is tried.
 */
export function extractToken(headers: Headers, query: Record<string, unknown> | undefined, allowQuery: boolean): string | undefined {
  const authz = header(headers, "authorization");
  if (authz !== undefined) {
    const m = BEARER_RE.exec(authz);
    if (m) return m[1];
  }
  const x = clean(header(headers, "x-auth-token"));
  if (x !== undefined) return x;
  if (allowQuery && query !== undefined && query !== null && typeof query === "object") {
    const q = Object.hasOwn(query, "token") ? query.token : undefined;
    if (typeof q === "string") return clean(q);
  }
  return undefined;
}

// Secrets are compared as HMACs under a key drawn at start-up: both sides become 32 bytes, so
// timingSafeEqual never sees different lengths and neither the length nor a common prefix leaks.
const COMPARE_KEY = randomBytes(32);

export function digest(secret: string): Buffer {
  return createHmac("sha256", COMPARE_KEY).update(secret, "utf8").digest();
}

export function digestEquals(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
