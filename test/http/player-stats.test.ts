// The player report's schema as fastify applies it (coercion and all), on a bare instance: no server.
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLAYER_REPORT_SCHEMA } from "../../src/http/schemas.js";

describe("PLAYER_REPORT_SCHEMA", () => {
  const app = Fastify();
  let received: unknown;
  beforeAll(async () => {
    app.post("/", { schema: { body: PLAYER_REPORT_SCHEMA } }, async (request, reply) => {
      received = request.body;
      return reply.code(204).send();
    });
    await app.ready();
  });
  afterAll(() => app.close());
  const post = (body: unknown) => app.inject({ method: "POST", url: "/", payload: JSON.stringify(body), headers: { "content-type": "application/json" } });

  const full = {
    freezeCount: 2,
    totalFreezesDuration: 1.25,
    framesDecoded: 3000,
    framesDropped: 4,
    jitterBufferDelay: 120.5,
    jitterBufferEmittedCount: 3000,
    packetsReceived: 90_000,
    packetsLost: -2,
    roundTripTime: 0.012,
    frameWidth: 1280,
    frameHeight: 720,
    frozenSeconds: 0,
  };

  it("takes a full report and an empty one", async () => {
    expect((await post(full)).statusCode).toBe(204);
    expect(received).toEqual(full);
    expect((await post({})).statusCode).toBe(204);
  });

  it.each([
    ["an unknown field", { ...full, bitrate: 1 }],
    ["a negative counter", { framesDecoded: -1 }],
    ["a fractional counter", { framesDropped: 1.5 }],
    ["an RTT over a minute", { roundTripTime: 61 }],
    ["a width beyond 16384", { frameWidth: 20_000 }],
    ["a frozen time over a day", { frozenSeconds: 90_000 }],
    ["a string that is no number", { framesDecoded: "many" }],
    ["an array", [full]],
  ])("refuses %s", async (_what, body) => {
    expect((await post(body)).statusCode).toBe(400);
  });
});
