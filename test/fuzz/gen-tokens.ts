// Tokens for a server with every kind of auth on, each with the grant docs/api.md gives it, so the
// fuzz can say exactly which statuses it must get: room tokens, the global and admin tokens and
// their near misses, valid JWTs of every claim shape, and hostile ones (alg none, other algs,
// bad signature, expired, not yet valid, wrong room, huge, garbage base64).
import { createHmac } from "node:crypto";
import jwt from "jsonwebtoken";
import type { Rng } from "./prng.js";

export const AUTH = {
  global: "fuzz-global-token",
  admin: "fuzz-admin-token",
  rooms: { vip: "fuzz-vip-token", demo: "fuzz-demo-token" } as Record<string, string>,
  secret: "fuzz-jwt-secret-which-is-long-enough",
};

/** Server env for AUTH. */
export function authEnv(): Record<string, string> {
  return {
    AUTH_TOKEN: AUTH.global,
    ADMIN_TOKEN: AUTH.admin,
    ROOM_TOKENS: Object.entries(AUTH.rooms)
      .map(([r, t]) => `${r}:${t}`)
      .join(","),
    JWT_SECRET: AUTH.secret,
  };
}

export const ROOMS = ["vip", "demo", "j1", "other"];

/** What a token is worth by docs/api.md. */
export type Grant =
  | { kind: "none" }
  | { kind: "global" }
  | { kind: "admin" }
  | { kind: "room"; room: string }
  | { kind: "jwt"; room?: string; publish: boolean; subscribe: boolean; admin: boolean };

export interface FuzzToken {
  token: string;
  grant: Grant;
  note: string;
}

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const hmac = (alg: "sha256" | "sha384" | "sha512", data: string, secret = AUTH.secret) => createHmac(alg, secret).update(data).digest("base64url");
const now = () => Math.floor(Date.now() / 1000);

function signed(header: object, payload: unknown, alg: "sha256" | "sha384" | "sha512" = "sha256", secret = AUTH.secret): string {
  const data = `${b64(header)}.${b64(payload)}`;
  return `${data}.${hmac(alg, data, secret)}`;
}

/** Claims of a JWT that verifies, and the grant they make (spec: room, permissions/role). */
function validClaims(rng: Rng): { claims: Record<string, unknown>; grant: Grant } {
  const claims: Record<string, unknown> = {};
  const roomChoice = rng.weighted<string | undefined>([
    [5, rng.pick(ROOMS)],
    [2, "*"],
    [2, undefined],
  ]);
  if (roomChoice !== undefined) claims.room = roomChoice;
  const permsKey = rng.weighted<string | undefined>([
    [5, "permissions"],
    [2, "role"],
    [2, undefined],
  ]);
  let list: string[] | undefined;
  if (permsKey !== undefined) {
    const names = ["publish", "subscribe", "admin", "viewer", "PUBLISH"];
    const picked = names.filter(() => rng.chance(0.35));
    const asString = rng.chance(0.3) && picked.length > 0;
    claims[permsKey] = asString ? picked[0] : picked;
    list = asString ? [picked[0]!] : picked;
  }
  if (rng.chance(0.6)) claims.exp = now() + rng.int(300, 86_400);
  if (rng.chance(0.3)) claims.nbf = now() - rng.int(300, 86_400);
  if (rng.chance(0.3)) claims.iat = now() - rng.int(0, 1000);
  if (rng.chance(0.2)) claims.sub = rng.pick(["user", "", "x".repeat(100)]);
  const admin = list?.includes("admin") ?? false;
  const grant: Grant = {
    kind: "jwt",
    room: roomChoice === undefined || roomChoice === "*" ? undefined : roomChoice,
    admin,
    publish: list === undefined ? true : admin || list.includes("publish"),
    subscribe: list === undefined ? true : admin || list.includes("subscribe"),
  };
  return { claims, grant };
}

function garbage(rng: Rng): string {
  return rng.weighted<string>([
    [3, rng.string(rng.int(1, 200), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=")],
    [2, `${rng.string(rng.int(1, 60), "abcXYZ09-_+/=")}.${rng.string(rng.int(1, 60), "abcXYZ09-_+/=")}.${rng.string(rng.int(0, 60), "abcXYZ09-_+/=")}`],
    [1, rng.unicode(rng.int(1, 40))],
    [1, "."],
    [1, ".."],
    [1, "..."],
    [1, "a.b.c.d"],
    [1, "null"],
    [1, "undefined"],
    [1, "Bearer"],
  ]);
}

export function fuzzToken(rng: Rng): FuzzToken {
  const kind = rng.weighted<string>([
    [6, "global"],
    [4, "admin"],
    [6, "room"],
    [6, "near-miss"],
    [16, "jwt-valid"],
    [4, "alg-none"],
    [3, "wrong-alg"],
    [4, "bad-signature"],
    [3, "wrong-secret"],
    [4, "expired"],
    [3, "not-yet"],
    [4, "bad-claims"],
    [2, "huge"],
    [4, "garbage"],
    [3, "mangled"],
  ]);
  switch (kind) {
    case "global":
      return { token: AUTH.global, grant: { kind: "global" }, note: kind };
    case "admin":
      return { token: AUTH.admin, grant: { kind: "admin" }, note: kind };
    case "room": {
      const room = rng.pick(Object.keys(AUTH.rooms));
      return { token: AUTH.rooms[room]!, grant: { kind: "room", room }, note: `room token ${room}` };
    }
    case "near-miss": {
      const base = rng.pick([AUTH.global, AUTH.admin, ...Object.values(AUTH.rooms)]);
      const token = rng.pick([
        base.toUpperCase(),
        base.slice(0, -1),
        base + "x",
        "x" + base,
        base.slice(0, rng.int(1, base.length - 1)),
        base.replace(/-/, "_"),
        `${base}\u0000`,
        `${base}%00`,
        base.split("").reverse().join(""),
        `${base},${base}`,
      ]);
      return { token, grant: { kind: "none" }, note: kind };
    }
    case "jwt-valid": {
      const { claims, grant } = validClaims(rng);
      return { token: jwt.sign(claims, AUTH.secret, { algorithm: "HS256", noTimestamp: !("iat" in claims) }), grant, note: `jwt ${JSON.stringify(claims)}` };
    }
    case "alg-none": {
      const { claims } = validClaims(rng);
      const header = { alg: rng.pick(["none", "None", "NONE", "nOnE"]), typ: "JWT" };
      const sig = rng.pick(["", hmac("sha256", `${b64(header)}.${b64(claims)}`), "x"]);
      return { token: `${b64(header)}.${b64(claims)}.${sig}`, grant: { kind: "none" }, note: `alg none ${JSON.stringify(claims)}` };
    }
    case "wrong-alg": {
      const { claims } = validClaims(rng);
      const [name, alg] = rng.pick([
        ["HS384", "sha384"],
        ["HS512", "sha512"],
        ["RS256", "sha256"],
        ["ES256", "sha256"],
        ["PS256", "sha256"],
        ["hs256", "sha256"],
      ] as const);
      return { token: signed({ alg: name, typ: "JWT" }, claims, alg), grant: { kind: "none" }, note: `alg ${name}` };
    }
    case "bad-signature": {
      const { claims, grant } = validClaims(rng);
      const good = signed({ alg: "HS256", typ: "JWT" }, claims);
      const [h, p, s] = good.split(".") as [string, string, string];
      const flip = (x: string) => {
        const i = rng.int(0, x.length - 1);
        const c = x[i] === "A" ? "B" : "A";
        return x.slice(0, i) + c + x.slice(i + 1);
      };
      const token = rng.pick([
        `${h}.${p}.${flip(s)}`,
        `${h}.${p}.`,
        `${h}.${p}.${s.slice(0, -2)}`,
        `${h}.${p}.${s}${s}`,
        `${h}.${flip(p)}.${s}`,
        `${h}.${b64({ ...claims, room: "*" })}.${s}`,
        `${flip(h)}.${p}.${s}`,
      ]);
      // Rewriting room to "*" where it already was leaves the token as signed: still valid.
      if (token === good) return { token, grant, note: "valid after all" };
      return { token, grant: { kind: "none" }, note: "bad signature" };
    }
    case "wrong-secret": {
      const { claims } = validClaims(rng);
      return {
        token: jwt.sign(claims, rng.pick(["another-secret", AUTH.secret + "x", "", " "]) || "k", { algorithm: "HS256" }),
        grant: { kind: "none" },
        note: "wrong secret",
      };
    }
    case "expired": {
      const { claims } = validClaims(rng);
      claims.exp = now() - rng.int(60, 86_400 * 365);
      return { token: signed({ alg: "HS256", typ: "JWT" }, claims), grant: { kind: "none" }, note: `expired ${JSON.stringify(claims)}` };
    }
    case "not-yet": {
      const { claims } = validClaims(rng);
      claims.nbf = now() + rng.int(60, 86_400);
      delete claims.exp;
      return { token: signed({ alg: "HS256", typ: "JWT" }, claims), grant: { kind: "none" }, note: `nbf ${JSON.stringify(claims)}` };
    }
    case "bad-claims": {
      // Verifies, but its claims grant nothing: room / permissions of the wrong type or shape.
      const payload = rng.pick<unknown>([
        { room: 5 },
        { room: ["vip"] },
        { room: "vip/../demo" },
        { room: "" },
        { room: null },
        { room: "vip", permissions: 1 },
        { room: "vip", permissions: null },
        { room: "vip", permissions: { publish: true } },
        { room: "vip", permissions: ["publish", 1] },
        { room: "vip", permissions: Array(17).fill("publish") },
        { role: ["admin", null] },
        { exp: "tomorrow" },
        { nbf: "yesterday", room: "vip" },
        [1, 2],
        "a string",
        42,
      ]);
      const token = signed({ alg: "HS256", typ: "JWT" }, payload);
      return { token, grant: { kind: "none" }, note: `claims ${JSON.stringify(payload)}` };
    }
    case "huge": {
      // Signed correctly, but longer than any real grant (over 8 KiB): refused unparsed.
      const { claims } = validClaims(rng);
      claims.pad = "x".repeat(
        rng.weighted<number>([
          [4, rng.int(8 * 1024, 13 * 1024)],
          [1, rng.int(13 * 1024, 40 * 1024)],
        ]),
      );
      return { token: jwt.sign(claims, AUTH.secret, { algorithm: "HS256" }), grant: { kind: "none" }, note: "huge jwt" };
    }
    case "garbage":
      return { token: garbage(rng), grant: { kind: "none" }, note: "garbage" };
    default: {
      // A valid JWT with base64 turned into something else: padding, standard alphabet, whitespace, extra dots.
      const { claims } = validClaims(rng);
      const good = jwt.sign(claims, AUTH.secret, { algorithm: "HS256" });
      const token = rng.pick([
        good + "=",
        good.replace(/-/g, "+").replace(/_/g, "/") === good ? good + "." : good.replace(/-/g, "+").replace(/_/g, "/"),
        good + ".",
        "." + good,
        good.replace(".", ".."),
        good.replace(".", " ."),
        good.split(".").slice(0, 2).join("."),
        good + "." + good,
      ]);
      return { token, grant: { kind: "none" }, note: "mangled jwt" };
    }
  }
}

// ---- what a grant allows (docs/api.md, "Authentication") -------------------------------------------

export type Action = "publish" | "subscribe";

export function allows(g: Grant, room: string, action: Action): boolean {
  switch (g.kind) {
    case "global":
      return true;
    case "room":
      return g.room === room;
    case "jwt":
      return (g.room === undefined || g.room === room) && g[action];
    default:
      return false;
  }
}

export function allowsAdmin(g: Grant, room: string | undefined): boolean {
  if (g.kind === "admin") return true;
  return g.kind === "jwt" && g.admin && (g.room === undefined || g.room === room);
}

/** Recordings / HLS of `room` (undefined: the listing of every room). */
export function allowsRead(g: Grant, room: string | undefined): boolean {
  if (g.kind === "global" || g.kind === "admin") return true;
  if (room !== undefined) return allows(g, room, "subscribe");
  return g.kind === "jwt" && g.room === undefined && g.subscribe;
}
