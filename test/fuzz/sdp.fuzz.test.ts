// Fuzz: hostile SDP offers to WHIP and WHEP. Every answer is one docs/api.md allows for the route,
// never a 500; a 201 is a real, complete SDP answer and its session is deleted again at once.
// Most WHIP offers go to a room that already has a publisher (409 after parsing, no peer made);
// the rest reach werift in a fresh room.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSdp } from "../../src/sfu/sdp.js";
import { sleep } from "../helpers/net.js";
import { CHROME_PUBLISH, hostileOffer, PLAY_OFFERS, PUBLISH_OFFERS, sdpContentType } from "./gen-sdp.js";
import {
  describeResponse,
  expectStatus,
  fail,
  jsonError,
  fuzzServer,
  openFds,
  plantFiles,
  runFuzz,
  timeoutFor,
  type CaseContext,
  type FuzzFiles,
  type FuzzServer,
} from "./harness.js";
import type { Rng } from "./prng.js";
import type { HttpTarget, RawResponse } from "./raw-http.js";

const BODY_LIMIT = 1024 * 1024;
const WHIP_ALLOWED = [201, 400, 401, 409, 413, 415, 422, 429, 503];
const WHEP_ALLOWED = [201, 400, 401, 403, 404, 413, 415, 422, 429, 503];

/** The server's own reading of Content-Type for WHIP/WHEP. */
const isSdpType = (t: string | undefined) => t !== undefined && t.split(";")[0]!.trim().toLowerCase() === "application/sdp";

let fuzz: FuzzServer;
let files: FuzzFiles;
let http: HttpTarget;

beforeAll(async () => {
  fuzz = await fuzzServer(plantFiles(), { MAX_SESSIONS: "1000" });
  ({ files, http } = fuzz);
});

afterAll(() => fuzz?.close());

/** A room that must hold a publisher: POST a real offer (201 or, if it still has one, 409). */
async function occupy(room: string): Promise<void> {
  const res = await http.send({ method: "POST", path: `/api/whip/publish/${room}`, headers: [["Content-Type", "application/sdp"]], body: CHROME_PUBLISH });
  if (res.status !== 201 && res.status !== 409) throw new Error(`could not occupy ${room}: ${res.status} ${res.body.toString()}`);
}

/** A 201 must carry a complete answer and a session resource, which is then deleted. */
async function checkCreated(ctx: CaseContext, res: RawResponse, kind: "whip" | "whep", what: string): Promise<void> {
  if (String(res.headers["content-type"]) !== "application/sdp") fail(`${what}: 201 with content-type ${String(res.headers["content-type"])}`);
  const answer = res.body.toString("utf8");
  const location = String(res.headers.location ?? "");
  if (!new RegExp(`^/api/${kind}/session/[A-Za-z0-9_-]{22,}$`).test(location)) fail(`${what}: 201 with Location ${JSON.stringify(location)}`);
  if (!/^"[^"]+"$/.test(String(res.headers.etag ?? ""))) fail(`${what}: 201 without an ETag`);
  try {
    if (!answer.startsWith("v=0\r\n")) fail("does not start with v=0");
    const parsed = parseSdp(answer);
    if (parsed.media.length === 0) fail("no m= line");
    for (const re of [
      /^a=candidate:\S+ \d+ udp \d+ \S+ \d+ typ host/m,
      /^a=fingerprint:sha-256 [0-9A-F:]+$/m,
      /^a=ice-ufrag:\S+$/m,
      /^a=ice-pwd:\S+$/m,
      /^a=setup:(active|passive)$/m,
    ]) {
      if (!re.test(answer)) fail(`missing ${re.source}`);
    }
    if (kind === "whep" && !/^a=(sendonly|inactive)$/m.test(answer)) fail("a WHEP answer with no sendonly section");
  } catch (err) {
    fail(`${what}: 201 is not a real SDP answer (${(err as Error).message}): ${JSON.stringify(answer.slice(0, 400))}`);
  }
  // 404: the session already ended on its own (ICE failed at once against the offer's candidates).
  const del = await ctx.send({ method: "DELETE", path: location });
  if (del.status !== 200 && del.status !== 404) fail(`${what}: DELETE ${location} answered ${describeResponse(del)}`);
}

/** Error statuses with the messages docs/api.md (or the route) gives them. */
function checkRefusal(res: RawResponse, what: string): void {
  const message = jsonError(res, what);
  const expected: Record<number, RegExp> = {
    400: /^invalid SDP$/,
    403: /^subscriber limit reached$/,
    404: /^no active publisher in room$/,
    409: /^publisher already exists in this room$/,
    413: /^request body too large$/,
    415: /^unsupported media type$/,
    422: /^(no supported codec in offer|offer cannot receive the publisher's codec)/,
    503: /^server at capacity/,
  };
  const re = expected[res.status];
  if (re && !re.test(message)) fail(`${what}: ${res.status} with message ${JSON.stringify(message)}`);
}

function sdpCase(kind: "whip" | "whep", busyRoom: string) {
  return async (rng: Rng, index: number, ctx: CaseContext): Promise<void> => {
    const fresh = kind === "whip" ? rng.chance(0.1) : rng.chance(0.03);
    const room = fresh ? `fz-${kind}-${index}` : busyRoom;
    const corpus = kind === "whip" ? (rng.chance(0.85) ? PUBLISH_OFFERS : PLAY_OFFERS) : rng.chance(0.8) ? PLAY_OFFERS : PUBLISH_OFFERS;
    const { body } = hostileOffer(rng, corpus);
    const type = sdpContentType(rng);
    const path = `/api/${kind}/${kind === "whip" ? "publish" : "play"}/${room}`;
    const what = `${kind} POST ${path} (${body.length} bytes, content-type ${JSON.stringify(type?.slice(0, 60))})`;
    const res = await ctx.send({ method: "POST", path, headers: type === undefined ? [] : [["Content-Type", type]], body });
    expectStatus(res, kind === "whip" ? WHIP_ALLOWED : WHEP_ALLOWED, what);
    // Over 1 MiB: 413, or 415 first for a type the server does not read at all.
    if (body.length > BODY_LIMIT && res.status !== 413 && !(res.status === 415 && !isSdpType(type)))
      fail(`${what}: a body over 1 MiB answered ${res.status}, not 413`);
    if (body.length <= BODY_LIMIT && !isSdpType(type) && res.status !== 415) fail(`${what}: not application/sdp but answered ${res.status}, not 415`);
    if (res.status === 201) await checkCreated(ctx, res, kind, what);
    else checkRefusal(res, what);
  };
}

describe("fuzz: SDP offers", () => {
  it(
    "WHIP publish",
    async () => {
      const fds = openFds();
      const report = await runFuzz({
        name: "whip",
        http,
        canary: files.canary,
        concurrency: 6,
        beforeBatch: () => occupy("fz-busy"),
        run: sdpCase("whip", "fz-busy"),
      });
      expect(report.failures).toEqual([]);
      await checkFds(fds);
    },
    timeoutFor("whip"),
  );

  it(
    "WHEP play",
    async () => {
      const fds = openFds();
      const report = await runFuzz({
        name: "whep",
        http,
        canary: files.canary,
        concurrency: 6,
        beforeBatch: () => occupy("fz-pub"),
        run: sdpCase("whep", "fz-pub"),
      });
      expect(report.failures).toEqual([]);
      await checkFds(fds);
    },
    timeoutFor("whep"),
  );
});

/** Sessions were deleted: the process has not kept their sockets (a little slack for the rooms' own). */
async function checkFds(before: number | undefined): Promise<void> {
  if (before === undefined) return;
  let now = openFds() ?? 0;
  for (let i = 0; i < 20 && now > before + 32; i++) {
    await sleep(250);
    now = openFds() ?? 0;
  }
  expect(now, `open file descriptors grew from ${before} to ${now}`).toBeLessThanOrEqual(before + 32);
}
