// The OpenAPI document against the routes a running server registers: every route is in it with
// its answers, it is valid OpenAPI 3.1, and it and the docs page are served without a CDN, without
// credentials, and under the rate limit. That the answers conform is checked for every test server
// (test/helpers/conformance.ts); here, that the check itself finds what it must.
import { Validator } from "@seriousme/openapi-schema-validator";
import type { FastifyInstance } from "fastify";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { PLUGIN_ROUTE_SCHEMAS } from "../../src/http/schemas.js";
import { createServer } from "../../src/server.js";
import { checkConformance, nonConformance, openApiPath, type OpenApiDocument } from "../helpers/conformance.js";
import { startServer, TEST_SERVER_ENV, type TestServer } from "../helpers/server.js";

interface RegisteredRoute {
  method: string;
  url: string;
  /** The route declared a schema with its answers (plugin routes get theirs from PLUGIN_ROUTE_SCHEMAS). */
  answers: boolean;
}

/** The docs page's own routes (@fastify/swagger-ui): the page, not part of the API it shows. */
const DOCS_PAGE = /^\/docs(\/|$)/;

let app: FastifyInstance;
let base: string;
let doc: OpenApiDocument & { components?: { securitySchemes?: Record<string, unknown> }; tags?: { name: string }[] };
const routes: RegisteredRoute[] = [];

beforeAll(async () => {
  // Every optional part on, so every route a server can have is registered.
  const config = loadConfig({
    ...TEST_SERVER_ENV,
    RECORD_DIR: mkdtempSync(path.join(tmpdir(), "openapi-test-")),
    AUTH_TOKEN: "openapi-test-token",
    TRANSCODER_API_KEY: "openapi-test-api-key",
    RELAY_KEY: "openapi-relay-key",
  });
  app = await buildApp(createServer(config), {
    instrument: (instance) => {
      checkConformance(instance);
      instance.addHook("onRoute", (route) => {
        const methods = Array.isArray(route.method) ? route.method : [route.method];
        const schema = route.schema as { response?: object } | undefined;
        for (const method of methods) routes.push({ method, url: route.url, answers: schema?.response !== undefined });
      });
    },
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  base = `http://127.0.0.1:${address.port}`;
  const res = await fetch(`${base}/api/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as typeof doc;
});

afterAll(async () => {
  await app?.close();
});

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("has every route the server registers, each with its answers", () => {
    // HEAD routes fastify adds for every GET answer as their GET does.
    const api = routes.filter((r) => r.method !== "HEAD" && !DOCS_PAGE.test(r.url));
    expect(api.length).toBeGreaterThan(40);
    const missing: string[] = [];
    for (const r of api) {
      const op = doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()];
      const own = r.answers || PLUGIN_ROUTE_SCHEMAS[r.url] !== undefined;
      if (op === undefined || !own || Object.keys(op.responses ?? {}).length === 0) {
        missing.push(`${r.method} ${r.url}${op === undefined ? " (not in the document)" : " (no schema with its answers in src/http/schemas.ts)"}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("has no path the server does not answer", () => {
    const registered = new Set(routes.map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    const extra: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) if (!registered.has(`${method} ${path}`)) extra.push(`${method} ${path}`);
    }
    expect(extra).toEqual([]);
  });

  it("documents the credentials and groups the routes by area", () => {
    expect(Object.keys(doc.components?.securitySchemes ?? {}).sort()).toEqual(["apiKey", "authToken", "bearer", "callbackSecret", "queryToken"]);
    const tags = new Set((doc.tags ?? []).map((t) => t.name));
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops) as { tags?: string[] }[]) {
        expect(op.tags?.length).toBeGreaterThan(0);
        for (const t of op.tags ?? []) expect(tags.has(t)).toBe(true);
      }
    }
  });
});

describe("the docs page", () => {
  it("needs no credential, and loads only its own assets from this server", async () => {
    const page = await fetch(`${base}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await page.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(3);
    for (const ref of refs) {
      expect(ref).not.toMatch(/^(https?:)?\/\//);
      const asset = await fetch(new URL(ref, `${base}/docs`));
      expect(asset.status, ref).toBe(200);
      await asset.arrayBuffer();
    }
    const init = await (await fetch(`${base}/docs/static/swagger-initializer.js`)).text();
    expect(init).toContain("validatorUrl: null");
    // The page reads the same document.
    expect(await (await fetch(`${base}/docs/json`)).json()).toEqual(doc);
  });
});

describe("rate limit", () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startServer({ RATE_LIMIT_RPS: "1", RATE_LIMIT_BURST: "2" });
  });
  afterAll(async () => {
    await limited?.close();
    limited?.removeRecordDir();
  });

  it("applies to the docs page and the document like to /api", async () => {
    const statuses: number[] = [];
    for (const path of ["/docs", "/docs", "/docs", "/api/openapi.json", "/healthz"]) {
      const res = await fetch(`${limited.url}${path}`);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    // A burst of 2: the third /docs request and the document after it wait; /healthz never does.
    expect(statuses).toEqual([200, 200, 429, 429, 200]);
  });
});

describe("the conformance check", () => {
  const sample: OpenApiDocument = {
    openapi: "3.1.0",
    paths: {
      "/api/rooms/{room}/hls": {
        get: {
          responses: {
            "200": { content: { "application/json": { schema: { type: "object", required: ["url"], properties: { url: { type: "string" } } } } } },
            "404": { content: { "application/json": { schema: { type: "object", required: ["error"] } } } },
          },
        },
      },
      "/{*}": { get: { responses: { "2XX": { content: { "text/html": { schema: { type: "string" } } } } } } },
    },
  };
  const json = "application/json; charset=utf-8";

  it("passes a documented answer", () => {
    expect(
      nonConformance(sample, { method: "GET", routeUrl: "/api/rooms/:room/hls", status: 200, contentType: json, body: '{"url":"/hls/a/stream.m3u8"}' }),
    ).toBeUndefined();
    expect(nonConformance(sample, { method: "HEAD", routeUrl: "/api/rooms/:room/hls", status: 404, contentType: json, body: "" })).toBeUndefined();
    expect(nonConformance(sample, { method: "GET", routeUrl: "/*", status: 206, contentType: "text/html", body: undefined })).toBeUndefined();
    expect(nonConformance(sample, { method: "GET", routeUrl: undefined, status: 404, contentType: json, body: '{"error":"not found"}' })).toBeUndefined();
  });

  it("finds an undocumented status, a body off its schema, an unknown route", () => {
    expect(nonConformance(sample, { method: "GET", routeUrl: "/api/rooms/:room/hls", status: 409, contentType: json, body: '{"error":"x"}' })).toMatch(
      /status not documented/,
    );
    expect(nonConformance(sample, { method: "GET", routeUrl: "/api/rooms/:room/hls", status: 200, contentType: json, body: '{"uri":"x"}' })).toMatch(
      /does not match/,
    );
    expect(nonConformance(sample, { method: "GET", routeUrl: "/*", status: 200, contentType: json, body: "{}" })).toMatch(/a JSON body where/);
    expect(nonConformance(sample, { method: "POST", routeUrl: "/api/rooms/:room/hls", status: 200, contentType: json, body: "{}" })).toMatch(
      /not in the document/,
    );
    expect(nonConformance(sample, { method: "GET", routeUrl: undefined, status: 200, contentType: json, body: "{}" })).toMatch(/unrouted/);
  });
});
