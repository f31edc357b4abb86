// `npm run test:native`: the addon's tests (test/sfu/native.test.ts: byte identity, sends, argument
// checks, fuzz) against an AddressSanitizer build of it, loaded into an ordinary Node with the
// sanitizer's runtime preloaded. Any invalid read or write ends the run with ASan's report.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
execFileSync(process.execPath, [path.join(here, "build.mjs"), "--asan"], { stdio: "inherit" });
const addon = path.join(here, "build-asan", "whipsfu_forward.node");
if (!existsSync(addon)) {
  console.error("test:native needs the AddressSanitizer build (a C++ compiler and this Node's headers)");
  process.exit(1);
}
const cxx = process.env.CXX || "g++";
const runtime = execFileSync(cxx, ["-print-file-name=libasan.so"], { encoding: "utf8" }).trim();
if (!path.isAbsolute(runtime) || !existsSync(runtime)) {
  console.error(`test:native: ${cxx} has no AddressSanitizer runtime (libasan.so)`);
  process.exit(1);
}
const result = spawnSync(process.execPath, [path.join(root, "node_modules", "vitest", "vitest.mjs"), "run", "--config", path.join(here, "vitest.config.mjs")], {
  cwd: root,
  stdio: "inherit",
  env: {
    ...process.env,
    LD_PRELOAD: runtime,
    // Node itself is not instrumented and keeps memory to its exit on purpose: leaks are not ours to judge.
    ASAN_OPTIONS: "detect_leaks=0:abort_on_error=1:halt_on_error=1",
    WHIPSFU_NATIVE_ADDON: addon,
    WHIPSFU_REQUIRE_NATIVE: "1",
  },
});
process.exit(result.status ?? 1);
