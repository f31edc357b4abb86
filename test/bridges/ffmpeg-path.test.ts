import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { clearFfmpegPathCache, resolveFfmpeg, resolveFfprobe, resolveTool, type FfmpegTool } from "../../src/bridges/ffmpeg-path.js";

const dir = mkdtempSync(path.join(tmpdir(), "ffmpeg-path-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A shell script standing in for a binary. */
function fake(name: string, body: string, mode = 0o755): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, mode);
  return file;
}

const noNpm = (tool: FfmpegTool): string => {
  throw new Error(`pretend ${tool} package is not installed`);
};

describe("resolveTool", () => {
  it("takes FFMPEG_PATH first", () => {
    const bin = fake("env-ffmpeg", 'echo "ffmpeg version env-1"');
    const r = resolveTool("ffmpeg", { env: { FFMPEG_PATH: bin, PATH: "/usr/bin" }, npmPath: noNpm });
    expect(r).toMatchObject({ path: bin, source: "env", version: "ffmpeg version env-1" });
  });

  it("takes FFPROBE_PATH for ffprobe, not FFMPEG_PATH", () => {
    const probe = fake("env-ffprobe", 'echo "ffprobe version env-2"');
    const r = resolveTool("ffprobe", { env: { FFMPEG_PATH: "/nonexistent", FFPROBE_PATH: probe, PATH: "" }, npmPath: noNpm });
    expect(r).toMatchObject({ path: probe, source: "env" });
  });

  it("falls back to the PATH when FFMPEG_PATH does not run, and finds an absolute path there", () => {
    const pathDir = mkdtempSync(path.join(dir, "bin-"));
    writeFileSync(path.join(pathDir, "ffmpeg"), '#!/bin/sh\necho "ffmpeg version on-path"\n', { mode: 0o755 });
    const r = resolveTool("ffmpeg", { env: { FFMPEG_PATH: path.join(dir, "missing"), PATH: `/nonexistent:${pathDir}` }, npmPath: noNpm });
    expect(r).toMatchObject({ path: path.join(pathDir, "ffmpeg"), source: "path", version: "ffmpeg version on-path" });
  });

  it("skips a non-executable file on the PATH", () => {
    const pathDir = mkdtempSync(path.join(dir, "bin-"));
    writeFileSync(path.join(pathDir, "ffmpeg"), '#!/bin/sh\necho "ffmpeg version x"\n', { mode: 0o644 });
    const npm = fake("npm-ffmpeg", 'echo "ffmpeg version npm"');
    const r = resolveTool("ffmpeg", { env: { PATH: pathDir }, npmPath: () => npm });
    expect(r.source).toBe("npm");
  });

  it("uses the npm package binary last, restoring a missing exec bit", () => {
    const npm = fake("npm-noexec", 'echo "ffmpeg version npm-1"', 0o644);
    const r = resolveTool("ffmpeg", { env: { PATH: "" }, npmPath: () => npm });
    expect(r).toMatchObject({ path: npm, source: "npm", version: "ffmpeg version npm-1" });
    expect(statSync(npm).mode & 0o777).toBe(0o755);
  });

  it("says so when the exec bit cannot be restored", () => {
    // Even root cannot chmod a file in /proc.
    expect(() => resolveTool("ffmpeg", { env: { PATH: "" }, npmPath: () => "/proc/version" })).toThrow(
      /\/proc\/version is not executable and chmod 0755 failed \((EPERM|EACCES|EROFS)\)/,
    );
  });

  it("throws one sentence listing every candidate when none works", () => {
    const broken = fake("broken", 'echo "boom" >&2; exit 3');
    let message = "";
    try {
      resolveTool("ffmpeg", { env: { FFMPEG_PATH: broken, PATH: "/nonexistent" }, npmPath: noNpm });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^No working ffmpeg binary found \(/);
    expect(message).toContain(`FFMPEG_PATH=${broken}: "${broken} -version" exited with 3: boom`);
    expect(message).toContain("no ffmpeg on PATH");
    expect(message).toContain("@ffmpeg-installer/ffmpeg: pretend ffmpeg package is not installed");
    expect(message).toMatch(/apt-get install ffmpeg/);
  });

  it("gives up on a binary that hangs", () => {
    const slow = fake("slow", 'sleep 5; echo "ffmpeg version slow"');
    expect(() => resolveTool("ffmpeg", { env: { FFMPEG_PATH: slow, PATH: "" }, npmPath: noNpm, timeoutMs: 200 })).toThrow(/did not finish within 200 ms/);
  });

  it("rejects a binary that prints no version line", () => {
    const odd = fake("odd", "echo hello");
    expect(() => resolveTool("ffmpeg", { env: { FFMPEG_PATH: odd, PATH: "" }, npmPath: noNpm })).toThrow(/printed no version line/);
  });

  it("loads the real npm packages through createRequire", () => {
    for (const tool of ["ffmpeg", "ffprobe"] as const) {
      const r = resolveTool(tool, { env: { PATH: "" } });
      expect(r.source).toBe("npm");
      expect(r.path).toMatch(new RegExp(`@${tool}-installer/linux-x64/${tool}$`));
      expect(r.version).toMatch(new RegExp(`^${tool} version`));
    }
  });
});

describe("resolveFfmpeg / resolveFfprobe", () => {
  it("return working binaries and cache them", () => {
    clearFfmpegPathCache();
    const t0 = performance.now();
    const ffmpeg = resolveFfmpeg();
    const first = performance.now() - t0;
    const t1 = performance.now();
    expect(resolveFfmpeg()).toBe(ffmpeg);
    const second = performance.now() - t1;
    expect(second).toBeLessThan(Math.max(1, first / 10));
    expect(path.isAbsolute(ffmpeg) || process.env.FFMPEG_PATH === ffmpeg).toBe(true);
    expect(resolveFfprobe()).toMatch(/ffprobe/);
  });
});
