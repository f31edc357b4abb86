// Fuzz: tokens and JWTs against a server with every kind of auth on. Each token carries the grant
// docs/api.md gives it (gen-tokens.ts), so every answer is checked exactly: accepted where the grant
// covers the room and the action, 401 with WWW-Authenticate everywhere else, never 500.
import { writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../helpers/server.js";
import { pct } from "./gen-http.js";
import { allows, allowsAdmin, allowsRead, authEnv, fuzzToken, ROOMS, type FuzzToken, type Grant } from "./gen-tokens.js";
import {
  describeResponse,
  expectError,
  expectStatus,
  fail,
  fuzzServer,
  plantFiles,
  runFuzz,
  timeoutFor,
  type CaseContext,
  type FuzzFiles,
  type FuzzServer,
} from "./harness.js";
import type { Rng } from "./prng.js";
import type { HttpTarget, RawResponse } from "./raw-http.js";

let fuzz: FuzzServer;
let server: TestServer;
let files: FuzzFiles;
let http: HttpTarget;
/** Recordings by room (the room is the name's prefix). */
const RECORDS: Record<string, { name: string; content: string }> = {};

beforeAll(async () => {
  files = plantFiles();
  RECORDS.demo = files.record;
  RECORDS.vip = { name: "vip_video0_1710123457.ivf", content: "DKIF-vip-recording" };
  writeFileSync(path.join(files.recordDir, RECORDS.vip.name), RECORDS.vip.content);
  mkdirSync(path.join(files.hlsDir, "vip"), { recursive: true });
  writeFileSync(path.join(files.hlsDir, "vip", "stream.m3u8"), files.hls.content);
  fuzz = await fuzzServer(files, authEnv());
  ({ server, http } = fuzz);
});

afterAll(() => fuzz?.close());

// RFC 6750 §2.1 as docs/api.md reads it: `Bearer` (any case), whitespace, one credential.
const BEARER_RE = /^[ \t]*bearer[ \t]+(\S+)[ \t]*$/i;
/**
 * What a server sees of a header value: its bytes read as Latin-1 (a value with code points past
 * U+00FF goes out as UTF-8, so the server sees those bytes one by one), surrounding spaces and
 * tabs dropped.
 */
const seen = (v: string) => (/[^\u0000-\u00ff]/.test(v) ? Buffer.from(v, "utf8").toString("latin1") : v).replace(/^[ \t]+|[ \t]+$/g, "");
/** Header values Node's parser accepts (no control characters but tab). */
const headerSafe = (v: string) => !/[\u0000-\u0008\u000a-\u001f\u007f]/.test(v);

interface Placed {
  headers: [string, string][];
  query: string;
  /** The token the server should read, by docs/api.md's order of sources. */
  effective(queryAllowed: boolean): string | undefined;
  /** Every header value can be parsed by the server (else a 400 from the HTTP parser is fine too). */
  parseable: boolean;
}

/** Puts the token somewhere a client might: Bearer (any spelling), X-Auth-Token, both, ?token=. */
function place(rng: Rng, t: FuzzToken, other: FuzzToken): Placed {
  const how = rng.weighted<string>([
    [8, "bearer"],
    [5, "x-auth"],
    [2, "bearer+x"],
    [2, "basic+x"],
    [3, "query"],
    [2, "none"],
    [1, "dup-x"],
    [1, "empty-bearer+x"],
  ]);
  const scheme = () => rng.pick(["Bearer", "Bearer", "bearer", "BEARER", "bEaReR"]) + rng.pick([" ", " ", "  ", "\t"]);
  const headers: [string, string][] = [];
  let query = "";
  switch (how) {
    case "bearer":
      headers.push(["Authorization", scheme() + t.token]);
      break;
    case "x-auth":
      headers.push(["X-Auth-Token", t.token]);
      break;
    case "bearer+x":
      headers.push(["Authorization", scheme() + other.token], ["X-Auth-Token", t.token]);
      break;
    case "basic+x":
      headers.push(["Authorization", `Basic ${Buffer.from(`u:${other.token}`).toString("base64")}`], ["X-Auth-Token", t.token]);
      break;
    case "query":
      query = `?token=${pct(t.token)}`;
      break;
    case "dup-x":
      headers.push(["X-Auth-Token", t.token], ["X-Auth-Token", t.token]);
      break;
    case "empty-bearer+x":
      headers.push(["Authorization", "Bearer "], ["X-Auth-Token", t.token]);
      break;
  }
  const effective = (queryAllowed: boolean): string | undefined => {
    const authz = headers.find(([k]) => k === "Authorization")?.[1];
    if (authz !== undefined) {
      const m = BEARER_RE.exec(seen(authz));
      if (m) return m[1];
    }
    const xs = headers.filter(([k]) => k === "X-Auth-Token").map(([, v]) => seen(v));
    // Node joins a repeated X-Auth-Token with ", ".
    const x = xs.length === 0 ? undefined : xs.join(", ");
    if (x !== undefined && x !== "") return x;
    if (queryAllowed && query !== "") return t.token.trim() === "" ? undefined : t.token.trim();
    return undefined;
  };
  return { headers, query, effective, parseable: headers.every(([, v]) => headerSafe(v)) };
}

function grantOf(token: string | undefined, t: FuzzToken, other: FuzzToken): Grant | undefined {
  if (token === undefined) return undefined;
  if (token === t.token) return t.grant;
  if (token === other.token) return other.grant;
  // Something neither token is (trimmed, joined): it grants nothing unless it is one of the secrets.
  return { kind: "none" };
}

function expect401(res: RawResponse, what: string): void {
  expectError(res, 401, "unauthorized", what);
  if (!/^Bearer/.test(String(res.headers["www-authenticate"] ?? ""))) fail(`${what}: 401 without WWW-Authenticate: Bearer`);
}

async function tokenCase(rng: Rng, _index: number, ctx: CaseContext): Promise<void> {
  const t = fuzzToken(rng);
  const other = fuzzToken(rng);
  const placed = place(rng, t, other);
  const room = rng.pick(ROOMS);
  const routes = ["whip", "whep", "admin", "records", "record", ...(server.app.hasRoute({ method: "GET", url: "/hls/:name/:file" }) ? ["hls"] : [])];
  const route = rng.pick(routes);
  const queryAllowed = route === "record" || route === "hls";
  const grant = grantOf(placed.effective(queryAllowed), t, other);
  let res: RawResponse;
  let what: string;
  const tokenNote = `${t.note.slice(0, 200)} (${JSON.stringify(t.token.slice(0, 80))}${t.token.length > 80 ? `… ${t.token.length} chars` : ""})`;
  const send = async (method: string, p: string, body?: string, extra: [string, string][] = []) => {
    what = `${method} ${p.slice(0, 120)} with ${JSON.stringify(placed.headers.map(([k, v]) => [k, v.slice(0, 60)]))}${placed.query ? " + ?token" : ""}, token ${tokenNote}`;
    return ctx.send({ method, path: p + placed.query, headers: [...placed.headers, ...extra], body });
  };
  switch (route) {
    case "whip":
    case "whep": {
      const action = route === "whip" ? "publish" : "subscribe";
      res = await send("POST", `/api/${route}/${route === "whip" ? "publish" : "play"}/${room}`, "v=0\r\n", [["Content-Type", "application/sdp"]]);
      if (!placed.parseable && res.status === 400) return;
      expectStatus(res, [400, 401, 413, 415, 429, 431], what!);
      if (res.status === 431) return;
      // Accepted: the request gets as far as the SDP, which is not an offer.
      if (grant !== undefined && allows(grant, room, action)) expectError(res, 400, "invalid SDP", what!);
      else if (placed.parseable) expect401(res, what!);
      break;
    }
    case "admin": {
      res = await send("POST", `/api/admin/rooms/${room}/close`);
      if (!placed.parseable && res.status === 400) return;
      expectStatus(res, [401, 404, 429, 431], what!);
      if (res.status === 431) return;
      // No room exists: an admin credential gets as far as "room not found".
      if (grant !== undefined && allowsAdmin(grant, room)) expectError(res, 404, "room not found", what!);
      else expect401(res, what!);
      break;
    }
    case "records": {
      res = await send("GET", "/api/records");
      if (!placed.parseable && res.status === 400) return;
      expectStatus(res, [200, 401, 429, 431], what!);
      if (res.status === 431) return;
      if (grant === undefined) {
        expect401(res, what!);
        break;
      }
      // Any token lists; a room-scoped one sees only its rooms' files.
      if (res.status !== 200) fail(`${what!}: ${describeResponse(res)}, expected 200`);
      const names = (JSON.parse(res.body.toString()) as { name: string }[]).map((r) => r.name).sort();
      const expected = Object.entries(RECORDS)
        .filter(([r]) => allowsRead(grant, undefined) || allowsRead(grant, r))
        .map(([, f]) => f.name)
        .sort();
      if (JSON.stringify(names) !== JSON.stringify(expected)) fail(`${what!}: listed ${JSON.stringify(names)}, expected ${JSON.stringify(expected)}`);
      break;
    }
    case "record": {
      const file = RECORDS[room];
      const name = file?.name ?? `${room}_video0_1710123456.ivf`;
      res = await send("GET", `/records/${name}`);
      if (!placed.parseable && res.status === 400) return;
      expectStatus(res, [200, 401, 404, 429, 431], what!);
      if (res.status === 431) return;
      if (grant !== undefined && allowsRead(grant, room)) {
        if (file) {
          if (res.status !== 200 || res.body.toString() !== file.content) fail(`${what!}: ${describeResponse(res)}, expected the recording`);
        } else expectError(res, 404, "record not found", what!);
      } else expect401(res, what!);
      break;
    }
    default: {
      res = await send("GET", `/hls/${room}/stream.m3u8`);
      if (!placed.parseable && res.status === 400) return;
      expectStatus(res, [200, 401, 404, 429, 431], what!);
      if (res.status === 431) return;
      if (grant !== undefined && allowsRead(grant, room)) {
        if (room === "vip") {
          if (res.status !== 200 || res.body.toString() !== files.hls.content) fail(`${what!}: ${describeResponse(res)}, expected the playlist`);
        } else if (res.status !== 404) fail(`${what!}: ${describeResponse(res)}, expected 404`);
      } else expect401(res, what!);
    }
  }
}

describe("fuzz: tokens and JWTs, auth on", () => {
  it(
    "every route that takes a token answers as the token's grant says",
    async () => {
      const report = await runFuzz({ name: "tokens", http, canary: files.canary, run: tokenCase });
      expect(report.failures).toEqual([]);
    },
    timeoutFor("tokens"),
  );
});
