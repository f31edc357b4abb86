// The one URL and file policy of the bridges: host allow-lists (wildcards included), schemes per
// use, MEDIA_DIR containment and file types. Pure checks; no server, no FFmpeg.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveWatermarkImage } from "../../src/bridges/relay/sources.js";
import { checkUrl, hostAllowed, IMAGE_FILE_TYPES, isHostPattern, MEDIA_FILE_TYPES, resolveMediaFile } from "../../src/bridges/policy.js";

describe("hosts", () => {
  it("an empty list allows every host; entries match exactly or, with *., subdomains only", () => {
    expect(hostAllowed("anything.example", [])).toBe(true);
    const list = ["127.0.0.1", "*.example.com", "cdn.test", "[::1]"];
    expect(hostAllowed("127.0.0.1", list)).toBe(true);
    expect(hostAllowed("img.example.com", list)).toBe(true);
    expect(hostAllowed("a.b.example.com", list)).toBe(true);
    expect(hostAllowed("IMG.Example.COM.", list)).toBe(true);
    expect(hostAllowed("CDN.test", list)).toBe(true);
    expect(hostAllowed("[::1]", list)).toBe(true);
    expect(hostAllowed("example.com", list)).toBe(false);
    expect(hostAllowed("example.com.evil.net", list)).toBe(false);
    expect(hostAllowed("evilexample.com", list)).toBe(false);
    expect(hostAllowed("sub.cdn.test", list)).toBe(false);
    expect(hostAllowed("10.0.0.1", list)).toBe(false);
  });

  it("knows what an allow-list entry may look like", () => {
    for (const ok of ["example.com", "*.example.com", "127.0.0.1", "::1", "[::1]", "host_1.local."]) expect(isHostPattern(ok), ok).toBe(true);
    for (const bad of ["*", "*.", "a b", "http://x", "x/y", "a..example", `${"a".repeat(250)}.com`]) expect(isHostPattern(bad), bad).toBe(false);
  });
});

describe("URLs per use", () => {
  it("accepts each use's schemes only, one line, with a host on the allow-list", () => {
    expect(checkUrl("rtmp://h/live/k", "rtmp").ok).toBe(true);
    expect(checkUrl("RTMPS://h/live/k", "rtmp").ok).toBe(true);
    expect(checkUrl("http://h/live/k", "rtmp")).toMatchObject({ ok: false, problem: "scheme" });
    expect(checkUrl("rtmp:/h/live/k", "rtmp")).toMatchObject({ ok: false, problem: "scheme" });
    expect(checkUrl("https://hooks.test/x", "callback").ok).toBe(true);
    expect(checkUrl("file:///etc/passwd", "callback")).toMatchObject({ ok: false, problem: "scheme" });
    expect(checkUrl("rtmp://h/live/a b", "rtmp")).toMatchObject({ ok: false, problem: "whitespace" });
    expect(checkUrl("rtmp://h/live/a\nb", "rtmp")).toMatchObject({ ok: false, problem: "control" });
    expect(checkUrl(`rtmp://h/${"k".repeat(3000)}`, "rtmp")).toMatchObject({ ok: false, problem: "too_long" });
    expect(checkUrl("https://img.example.com/a.png", "image", ["*.example.com"]).ok).toBe(true);
    expect(checkUrl("https://evil.net/a.png", "image", ["*.example.com"])).toMatchObject({ ok: false, problem: "host_not_allowed", host: "evil.net" });
  });
});

describe("files under MEDIA_DIR", () => {
  const media = mkdtempSync(path.join(tmpdir(), "policy-media-"));
  const outside = mkdtempSync(path.join(tmpdir(), "policy-outside-"));
  beforeAll(() => {
    writeFileSync(path.join(media, "clip.mp4"), "x");
    writeFileSync(path.join(media, "logo.png"), "x");
    mkdirSync(path.join(media, "dir.mp4"));
    writeFileSync(path.join(outside, "secret.mp4"), "x");
    symlinkSync(path.join(outside, "secret.mp4"), path.join(media, "escape.mp4"));
  });
  afterAll(() => {
    rmSync(media, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it("resolves regular files of the use's types inside the directory, and says why it refuses the rest", async () => {
    expect(await resolveMediaFile("clip.mp4", media, MEDIA_FILE_TYPES)).toMatchObject({ ok: true, display: "clip.mp4" });
    expect(await resolveMediaFile(path.join(media, "logo.png"), media, IMAGE_FILE_TYPES)).toMatchObject({ ok: true, display: "logo.png" });
    const problem = async (raw: string, types = MEDIA_FILE_TYPES) => {
      const v = await resolveMediaFile(raw, media, types);
      return v.ok ? "accepted" : v.problem;
    };
    expect(await problem("file:clip.mp4")).toBe("colon");
    expect(await problem("../x.mp4")).toBe("dot_segment");
    expect(await problem(path.join(outside, "secret.mp4"))).toBe("outside");
    expect(await problem("escape.mp4")).toBe("outside");
    expect(await problem("logo.png")).toBe("file_type");
    expect(await problem("clip.mp4", IMAGE_FILE_TYPES)).toBe("file_type");
    expect(await problem("missing.mp4")).toBe("missing");
    expect(await problem("dir.mp4")).toBe("not_regular");
  });
});

describe("relay watermark images", () => {
  const media = mkdtempSync(path.join(tmpdir(), "policy-wm-"));
  beforeAll(() => writeFileSync(path.join(media, "logo.png"), "x"));
  afterAll(() => rmSync(media, { recursive: true, force: true }));
  const refusal = async (raw: string, allowedHosts: readonly string[]) => {
    try {
      await resolveWatermarkImage(raw, { mediaDir: media, allowedHosts });
    } catch (err) {
      expect(err).toMatchObject({ kind: "invalid_input" });
      return (err as Error).message;
    }
    return "accepted";
  };

  it("follow INGEST_ALLOWED_HOSTS with the same rule as sources, wildcards included", async () => {
    const hosts = ["*.example.com", "127.0.0.1"];
    expect(await resolveWatermarkImage("https://img.example.com/logo.png", { mediaDir: media, allowedHosts: hosts })).toMatchObject({
      kind: "http",
      input: "https://img.example.com/logo.png",
      protocols: ["http", "https", "tcp", "tls"],
    });
    expect(await refusal("http://127.0.0.1:8000/a.jpg", hosts)).toBe("accepted");
    expect(await refusal("https://example.com/logo.png", hosts)).toBe('wmimage: host "example.com" is not in INGEST_ALLOWED_HOSTS');
    expect(await refusal("https://example.com.evil.net/logo.png", hosts)).toMatch(/not in INGEST_ALLOWED_HOSTS/);
    expect(await refusal("https://anything.test/logo.png", [])).toBe("accepted");
  });

  it("are .png or .jpg, over http(s) or as files under MEDIA_DIR", async () => {
    expect(await resolveWatermarkImage("logo.png", { mediaDir: media, allowedHosts: [] })).toMatchObject({ kind: "file", protocols: ["file"] });
    expect(await refusal("logo.gif", [])).toBe("wmimage must be a .png or .jpg image");
    expect(await refusal("../logo.png", [])).toBe("wmimage: file paths must be under MEDIA_DIR");
    expect(await refusal("file:logo.png", [])).toBe("wmimage: file paths must be under MEDIA_DIR");
    expect(await refusal("missing.png", [])).toBe("wmimage: no such image under MEDIA_DIR");
    expect(await refusal("/etc/x.png", [])).toBe("wmimage: no such image under MEDIA_DIR");
  });
});
