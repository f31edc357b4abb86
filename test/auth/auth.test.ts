import { createHmac } from "node:crypto";
import jwt from "jsonwebtoken";
import { describe, expect, it } from "vitest";
import { Authorizer, MAX_JWT_LENGTH, extractToken, type AuthSettings } from "../../src/auth/auth.js";
import { loadConfig } from "../../src/config.js";

const SECRET = "jwt-secret-for-tests-0123456789abcdef";
const NOW = Math.floor(Date.now() / 1000);

function settings(s: Partial<AuthSettings> = {}): AuthSettings {
  return { roomTokens: new Map(), ...s };
}

const b64 = (v: unknown): string => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** A JWT built by hand: any header, any payload (even non-objects), HMAC-SHA256 or a given signature. */
function craft(header: unknown, payload: unknown, opts: { secret?: string; signature?: string } = {}): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig =
    opts.signature ??
    createHmac("sha256", opts.secret ?? SECRET)
      .update(input)
      .digest("base64url");
  return `${input}.${sig}`;
}

const sign = (payload: object, opts: jwt.SignOptions = {}, secret = SECRET): string => jwt.sign(payload, secret, { algorithm: "HS256", ...opts });

describe("room token and global token", () => {
  const auth = new Authorizer(
    settings({
      roomTokens: new Map([
        ["a", "tokA"],
        ["b", "tokB"],
      ]),
      authToken: "global",
    }),
  );

  it("accepts a room token for its own room, for both actions", () => {
    expect(auth.enabled).toBe(true);
    expect(auth.allows("tokA", "a", "publish")).toBe(true);
    expect(auth.allows("tokA", "a", "subscribe")).toBe(true);
  });

  it("refuses a room token for another room, with or without an entry", () => {
    expect(auth.allows("tokA", "b", "publish")).toBe(false);
    expect(auth.allows("tokA", "c", "subscribe")).toBe(false);
  });

  it("still accepts the global token in a room that has its own token (room tokens are additional)", () => {
    expect(auth.allows("global", "a", "publish")).toBe(true);
    expect(auth.allows("global", "c", "subscribe")).toBe(true);
  });

  it("refuses wrong, missing, empty, prefix and longer tokens", () => {
    for (const t of [undefined, "", "tok", "tokA ", "tokAA", "globa", "global!", "GLOBAL"]) {
      expect(auth.allows(t, "a", "publish")).toBe(false);
    }
  });

  it("a global token alone enables auth", () => {
    const g = new Authorizer(settings({ authToken: "g" }));
    expect(g.enabled).toBe(true);
    expect(g.allows("g", "x", "publish")).toBe(true);
    expect(g.allows(undefined, "x", "publish")).toBe(false);
  });

  it("is built from the real Config", () => {
    const c = loadConfig({ ROOM_TOKENS: "demo:d1", AUTH_TOKEN: "g" });
    const a = new Authorizer(c);
    expect(a.allows("d1", "demo", "publish")).toBe(true);
    expect(a.allows("d1", "other", "publish")).toBe(false);
    expect(a.allows("g", "demo", "publish")).toBe(true);
  });

  it("a room token works next to a JWT secret, and the JWT still works in that room", () => {
    const a = new Authorizer(settings({ roomTokens: new Map([["a", "tokA"]]), jwtSecret: SECRET }));
    expect(a.allows("tokA", "a", "publish")).toBe(true);
    expect(a.allows(sign({ room: "a" }), "a", "publish")).toBe(true);
    expect(a.allows("tokA", "b", "publish")).toBe(false);
  });
});

describe("JWT", () => {
  const auth = new Authorizer(settings({ jwtSecret: SECRET }));

  it("accepts a valid HS256 token for its room", () => {
    const t = sign({ room: "demo", permissions: ["publish", "subscribe"] }, { expiresIn: 60 });
    expect(auth.allows(t, "demo", "publish")).toBe(true);
    expect(auth.allows(t, "demo", "subscribe")).toBe(true);
  });

  it("refuses it for another room", () => {
    const t = sign({ room: "demo" });
    expect(auth.allows(t, "other", "publish")).toBe(false);
    expect(auth.allows(t, "demox", "subscribe")).toBe(false);
  });

  it('room "*" and an absent room claim mean every room', () => {
    for (const t of [sign({ room: "*" }), sign({})]) {
      expect(auth.allows(t, "x", "publish")).toBe(true);
      expect(auth.allows(t, "y_-9", "subscribe")).toBe(true);
    }
  });

  it("absent permissions = publish and subscribe, not admin", () => {
    const t = sign({ room: "demo" });
    expect(auth.allows(t, "demo", "publish")).toBe(true);
    expect(auth.allows(t, "demo", "subscribe")).toBe(true);
    expect(auth.allowsAdmin(t)).toBe(false);
  });

  it("publish-only cannot subscribe, subscribe-only cannot publish; a string is a one-element list", () => {
    const p = sign({ room: "demo", permissions: ["publish"] });
    expect(auth.allows(p, "demo", "publish")).toBe(true);
    expect(auth.allows(p, "demo", "subscribe")).toBe(false);
    const s = sign({ room: "demo", permissions: "subscribe" });
    expect(auth.allows(s, "demo", "subscribe")).toBe(true);
    expect(auth.allows(s, "demo", "publish")).toBe(false);
  });

  it("role is read when permissions is absent; permissions wins when both are present", () => {
    const r = sign({ role: "publish" });
    expect(auth.allows(r, "x", "publish")).toBe(true);
    expect(auth.allows(r, "x", "subscribe")).toBe(false);
    const both = sign({ permissions: ["subscribe"], role: "admin" });
    expect(auth.allows(both, "x", "publish")).toBe(false);
    expect(auth.allowsAdmin(both)).toBe(false);
  });

  it("an empty permissions list or unknown names grant nothing", () => {
    expect(auth.allows(sign({ permissions: [] }), "x", "publish")).toBe(false);
    expect(auth.allows(sign({ permissions: ["root", "PUBLISH"] }), "x", "publish")).toBe(false);
    expect(auth.allows(sign({ permissions: ["publish", "nonsense"] }), "x", "publish")).toBe(true);
  });

  it("refuses an expired token, honouring only a few seconds of clock tolerance", () => {
    expect(auth.allows(sign({ exp: NOW - 60 }), "x", "publish")).toBe(false);
    expect(auth.allows(sign({ exp: NOW - 2 }), "x", "publish")).toBe(true);
    expect(auth.allows(sign({ exp: NOW - 10 }), "x", "publish")).toBe(false);
  });

  it("refuses a token whose nbf is in the future", () => {
    expect(auth.allows(sign({ nbf: NOW + 120 }), "x", "publish")).toBe(false);
    expect(auth.allows(sign({ nbf: NOW + 2 }), "x", "publish")).toBe(true);
    expect(auth.allows(sign({ nbf: NOW - 10, exp: NOW + 60 }), "x", "publish")).toBe(true);
  });

  it("uses the injected clock", () => {
    let now = NOW;
    const a = new Authorizer(settings({ jwtSecret: SECRET }), { now: () => now });
    const t = sign({ nbf: NOW + 100, exp: NOW + 200 });
    expect(a.allows(t, "x", "publish")).toBe(false);
    now = NOW + 150;
    expect(a.allows(t, "x", "publish")).toBe(true);
    now = NOW + 300;
    expect(a.allows(t, "x", "publish")).toBe(false);
  });

  it('refuses alg "none" (hand-crafted, empty signature) in every spelling', () => {
    for (const alg of ["none", "None", "NONE"]) {
      const t = `${b64({ alg, typ: "JWT" })}.${b64({ room: "x", permissions: "admin" })}.`;
      expect(auth.allows(t, "x", "publish")).toBe(false);
      expect(auth.allowsAdmin(t)).toBe(false);
      expect(auth.allowsRead(t, undefined)).toBe(false);
    }
  });

  it("refuses a token signed with HS512 or HS384 under the same secret", () => {
    expect(auth.allows(sign({ room: "x" }, { algorithm: "HS512" }), "x", "publish")).toBe(false);
    expect(auth.allows(sign({ room: "x" }, { algorithm: "HS384" }), "x", "publish")).toBe(false);
  });

  it("refuses an RS256 header (alg confusion: HMAC with the secret as if it were a public key)", () => {
    const t = craft({ alg: "RS256", typ: "JWT" }, { room: "x" });
    expect(auth.allows(t, "x", "publish")).toBe(false);
    const noAlg = craft({ typ: "JWT" }, { room: "x" });
    expect(auth.allows(noAlg, "x", "publish")).toBe(false);
  });

  it("refuses a token signed with another secret, or with its signature altered", () => {
    expect(auth.allows(sign({ room: "x" }, {}, "another-secret"), "x", "publish")).toBe(false);
    const good = sign({ room: "x" });
    const bad = good.slice(0, -2) + (good.endsWith("AA") ? "BB" : "AA");
    expect(auth.allows(bad, "x", "publish")).toBe(false);
    // payload swapped under a valid signature
    const [h, , s] = good.split(".");
    expect(auth.allows(`${h}.${b64({ room: "y" })}.${s}`, "y", "publish")).toBe(false);
  });

  it("accepts a hand-made HS256 token (the crafting helper is sound)", () => {
    expect(auth.allows(craft({ alg: "HS256", typ: "JWT" }, { room: "x" }), "x", "publish")).toBe(true);
  });

  it("refuses tokens over 8 KiB before parsing, and survives huge garbage", () => {
    const big = sign({ room: "x", pad: "p".repeat(MAX_JWT_LENGTH) });
    expect(big.length).toBeGreaterThan(MAX_JWT_LENGTH);
    expect(auth.allows(big, "x", "publish")).toBe(false);
    const garbage = "a.".repeat(500_000) + "b";
    expect(() => auth.allows(garbage, "x", "publish")).not.toThrow();
    expect(auth.allows(garbage, "x", "publish")).toBe(false);
    expect(auth.allows("x".repeat(5_000_000), "x", "publish")).toBe(false);
  });

  it("never throws on malformed tokens and refuses them", () => {
    const bad = [
      "not-a-jwt",
      "a.b.c",
      "..",
      "a..",
      `${b64("{")}.${b64({})}.sig`,
      `${b64({ alg: "HS256" })}.${b64("not json")}.sig`,
      craft({ alg: "HS256" }, "just a string"),
      craft({ alg: "HS256" }, [1, 2, 3]),
      craft({ alg: "HS256" }, null),
      craft("[]", { room: "x" }),
      "\u0000\u0001.\uffff.🙂",
      "Bearer x",
    ];
    for (const t of bad) {
      expect(() => auth.allows(t, "x", "publish")).not.toThrow();
      expect(auth.allows(t, "x", "publish")).toBe(false);
      expect(auth.allowsAdmin(t)).toBe(false);
      expect(auth.allowsRead(t, undefined)).toBe(false);
    }
  });

  it("refuses non-string and malformed claims instead of guessing", () => {
    const H = { alg: "HS256", typ: "JWT" };
    const bad: unknown[] = [
      { room: 42 },
      { room: null },
      { room: ["x"] },
      { room: { $ne: "" } },
      { room: "../x" },
      { room: "x".repeat(65) },
      { room: "" },
      { permissions: 1 },
      { permissions: null },
      { permissions: { publish: true } },
      { permissions: ["publish", 7] },
      { permissions: [["publish"]] },
      { role: true },
      { role: { admin: true } },
      { exp: "9999999999" },
      { nbf: "0" },
      { exp: null },
    ];
    for (const p of bad) {
      const t = craft(H, p);
      expect(() => auth.allows(t, "x", "publish")).not.toThrow();
      expect(auth.allows(t, "x", "publish"), JSON.stringify(p)).toBe(false);
      expect(auth.allowsAdmin(t), JSON.stringify(p)).toBe(false);
    }
    // prototype keys are not claims
    expect(auth.allows(craft(H, JSON.parse('{"__proto__":{"permissions":"admin"}}')), "x", "publish")).toBe(true);
    expect(auth.allowsAdmin(craft(H, JSON.parse('{"__proto__":{"permissions":"admin"}}')))).toBe(false);
  });

  it("a JWT is not accepted when no JWT_SECRET is configured", () => {
    const a = new Authorizer(settings({ authToken: "g" }));
    expect(a.allows(sign({ room: "x" }), "x", "publish")).toBe(false);
  });
});

describe("admin", () => {
  it("ADMIN_TOKEN grants admin, compared exactly", () => {
    const a = new Authorizer(settings({ authToken: "g", adminToken: "adm" }));
    expect(a.adminEnabled).toBe(true);
    expect(a.allowsAdmin("adm")).toBe(true);
    expect(a.allowsAdmin("adm", "any")).toBe(true);
    for (const t of [undefined, "", "ad", "admx", "ADM", "g"]) expect(a.allowsAdmin(t)).toBe(false);
  });

  it("ADMIN_TOKEN is not a publish/subscribe credential", () => {
    const a = new Authorizer(settings({ authToken: "g", adminToken: "adm" }));
    expect(a.allows("adm", "x", "publish")).toBe(false);
    expect(a.allows("adm", "x", "subscribe")).toBe(false);
  });

  it("role admin / permissions admin: admin implies publish and subscribe", () => {
    const a = new Authorizer(settings({ jwtSecret: SECRET }));
    expect(a.adminEnabled).toBe(true);
    for (const t of [sign({ role: "admin" }), sign({ permissions: ["admin"] }), sign({ permissions: "admin" }), sign({ role: ["admin"] })]) {
      expect(a.allowsAdmin(t)).toBe(true);
      expect(a.allows(t, "x", "publish")).toBe(true);
      expect(a.allows(t, "x", "subscribe")).toBe(true);
      expect(a.allowsRead(t, undefined)).toBe(true);
    }
  });

  it("an admin JWT scoped to a room is admin for that room only", () => {
    const a = new Authorizer(settings({ jwtSecret: SECRET }));
    const t = sign({ room: "demo", role: "admin" });
    expect(a.allowsAdmin(t, "demo")).toBe(true);
    expect(a.allowsAdmin(t, "other")).toBe(false);
    expect(a.allowsAdmin(t)).toBe(false);
    expect(a.allows(t, "demo", "publish")).toBe(true);
    expect(a.allows(t, "other", "publish")).toBe(false);
  });

  it("an expired or wrongly signed admin JWT is refused", () => {
    const a = new Authorizer(settings({ jwtSecret: SECRET }));
    expect(a.allowsAdmin(sign({ role: "admin", exp: NOW - 60 }))).toBe(false);
    expect(a.allowsAdmin(sign({ role: "admin" }, {}, "nope"))).toBe(false);
    expect(a.allowsAdmin(sign({ role: "admin" }, { algorithm: "HS512" }))).toBe(false);
  });

  it("is disabled when neither ADMIN_TOKEN nor JWT_SECRET is set, even with other tokens or auth off", () => {
    const off = new Authorizer(settings());
    expect(off.enabled).toBe(false);
    expect(off.adminEnabled).toBe(false);
    expect(off.allowsAdmin(undefined)).toBe(false);
    expect(off.allowsAdmin("anything")).toBe(false);
    const g = new Authorizer(settings({ authToken: "g", roomTokens: new Map([["a", "t"]]) }));
    expect(g.adminEnabled).toBe(false);
    expect(g.allowsAdmin("g")).toBe(false);
    expect(g.allowsAdmin("t")).toBe(false);
  });

  it("ADMIN_TOKEN alone leaves publish/subscribe open but guards admin", () => {
    const a = new Authorizer(settings({ adminToken: "adm" }));
    expect(a.enabled).toBe(false);
    expect(a.adminEnabled).toBe(true);
    expect(a.allows(undefined, "x", "publish")).toBe(true);
    expect(a.allowsAdmin(undefined)).toBe(false);
    expect(a.allowsAdmin("nope")).toBe(false);
    expect(a.allowsAdmin("adm")).toBe(true);
  });
});

describe("disabled mode", () => {
  it("allows everything but admin when nothing is configured", () => {
    const a = new Authorizer(settings());
    expect(a.enabled).toBe(false);
    expect(a.allows(undefined, "x", "publish")).toBe(true);
    expect(a.allows("garbage", "x", "subscribe")).toBe(true);
    expect(a.allowsRead(undefined, undefined)).toBe(true);
    expect(a.allowsRead(undefined, "x")).toBe(true);
    expect(a.allowsAdmin(undefined)).toBe(false);
  });

  it("empty-string settings count as not configured (an empty token never matches)", () => {
    const a = new Authorizer({ authToken: "", jwtSecret: "", adminToken: "", roomTokens: new Map([["x", ""]]) });
    expect(a.enabled).toBe(false);
    expect(a.adminEnabled).toBe(false);
    expect(a.allowsAdmin("")).toBe(false);
    expect(loadConfig({}).authToken).toBeUndefined();
  });
});

describe("allowsRead", () => {
  const auth = new Authorizer(settings({ roomTokens: new Map([["a", "tokA"]]), authToken: "global", adminToken: "adm", jwtSecret: SECRET }));

  it("global and admin tokens read every room and the full listing", () => {
    for (const t of ["global", "adm"]) {
      expect(auth.allowsRead(t, undefined)).toBe(true);
      expect(auth.allowsRead(t, "a")).toBe(true);
      expect(auth.allowsRead(t, "zzz")).toBe(true);
    }
  });

  it("a room token reads its own room only, and not the full listing", () => {
    expect(auth.allowsRead("tokA", "a")).toBe(true);
    expect(auth.allowsRead("tokA", "b")).toBe(false);
    expect(auth.allowsRead("tokA", undefined)).toBe(false);
  });

  it("a JWT reads the rooms it could subscribe to; the listing needs an every-room JWT", () => {
    const room = sign({ room: "a", permissions: ["subscribe"] });
    expect(auth.allowsRead(room, "a")).toBe(true);
    expect(auth.allowsRead(room, "b")).toBe(false);
    expect(auth.allowsRead(room, undefined)).toBe(false);
    const every = sign({ room: "*", permissions: "subscribe" });
    expect(auth.allowsRead(every, undefined)).toBe(true);
    expect(auth.allowsRead(every, "b")).toBe(true);
    expect(auth.allowsRead(sign({}), undefined)).toBe(true);
  });

  it("a publish-only JWT cannot read", () => {
    const p = sign({ permissions: ["publish"] });
    expect(auth.allowsRead(p, "a")).toBe(false);
    expect(auth.allowsRead(p, undefined)).toBe(false);
  });

  it("no token or a wrong token reads nothing", () => {
    for (const t of [undefined, "", "nope", sign({}, {}, "other")]) {
      expect(auth.allowsRead(t, undefined)).toBe(false);
      expect(auth.allowsRead(t, "a")).toBe(false);
    }
  });
});

describe("extractToken", () => {
  it("reads Authorization: Bearer, with the scheme in any case", () => {
    for (const v of ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr \t abc  "]) {
      expect(extractToken({ authorization: v }, undefined, false)).toBe("abc");
    }
  });

  it("Bearer beats X-Auth-Token, which beats ?token=", () => {
    expect(extractToken({ authorization: "Bearer one", "x-auth-token": "two" }, { token: "three" }, true)).toBe("one");
    expect(extractToken({ "x-auth-token": "two" }, { token: "three" }, true)).toBe("two");
    expect(extractToken({ "x-auth-token": "  two  " }, undefined, false)).toBe("two");
  });

  it("reads ?token= only when allowed", () => {
    expect(extractToken({}, { token: "three" }, false)).toBeUndefined();
    expect(extractToken({}, { token: "three" }, true)).toBe("three");
    expect(extractToken({}, { token: ["a", "b"] }, true)).toBeUndefined();
    expect(extractToken({}, { token: "" }, true)).toBeUndefined();
    expect(extractToken({}, { token: 5 }, true)).toBeUndefined();
    expect(extractToken({}, undefined, true)).toBeUndefined();
    expect(extractToken({}, Object.create({ token: "inherited" }) as Record<string, unknown>, true)).toBeUndefined();
  });

  it("ignores a malformed or non-Bearer Authorization header and falls through", () => {
    for (const v of ["Bearer", "Bearer ", "Bearerabc", "Bearer a b", "Basic dXNlcjpwYXNz", "Token abc", "", "abc"]) {
      expect(extractToken({ authorization: v }, undefined, false), v).toBeUndefined();
      expect(extractToken({ authorization: v, "x-auth-token": "x" }, undefined, false), v).toBe("x");
    }
  });

  it("finds headers whatever the case of their names", () => {
    expect(extractToken({ Authorization: "Bearer abc" }, undefined, false)).toBe("abc");
    expect(extractToken({ "X-Auth-Token": "xyz" }, undefined, false)).toBe("xyz");
  });

  it("treats repeated headers as absent unless all copies agree", () => {
    expect(extractToken({ "x-auth-token": ["a", "b"] }, undefined, false)).toBeUndefined();
    expect(extractToken({ "x-auth-token": ["a", "a"] }, undefined, false)).toBe("a");
    expect(extractToken({ authorization: [] }, undefined, false)).toBeUndefined();
  });

  it("returns undefined when there is no token at all", () => {
    expect(extractToken({}, undefined, false)).toBeUndefined();
    expect(extractToken({ "x-auth-token": "   " }, {}, true)).toBeUndefined();
  });

  it("extracted tokens work end to end", () => {
    const a = new Authorizer(settings({ authToken: "g" }));
    expect(a.allows(extractToken({ authorization: "bearer g" }, undefined, false), "x", "publish")).toBe(true);
    expect(a.allows(extractToken({ authorization: "Bearer bad", "x-auth-token": "g" }, undefined, false), "x", "publish")).toBe(false);
  });
});
