// Builds the native forwarding addon during `npm install`, against the running Node's own headers
// and OpenSSL, with the node-gyp npm bundles. Never fails the install and never downloads: where
// the headers, node-gyp or a compiler are missing, it says so and the JavaScript fast path runs.
//   node native/build.mjs           the addon, in native/build/Release/
//   node native/build.mjs --asan    an AddressSanitizer build, in native/build-asan/ (npm run test:native)
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const asan = process.argv.includes("--asan");

function skip(why) {
  console.log(`native forwarding addon not built: ${why}; the JavaScript fast path will run (FORWARD_PATH=fast)`);
  process.exit(0);
}

if (process.env.WHIPSFU_SKIP_NATIVE === "1" && !asan) skip("WHIPSFU_SKIP_NATIVE=1");
if (process.platform !== "linux") skip(`it is for Linux (sendmmsg), this is ${process.platform}`);

// The headers of this very Node: <prefix>/include/node, next to <prefix>/bin/node. Without them
// node-gyp would download them, which an install must not do.
const prefix = path.resolve(path.dirname(process.execPath), "..");
const headers = path.join(prefix, "include", "node");
if (!existsSync(path.join(headers, "node_api.h")) || !existsSync(path.join(headers, "openssl", "evp.h"))) {
  skip(`this Node's headers are not at ${headers}`);
}

if (asan) {
  // Straight to the compiler: one source file, and node-gyp keeps one build directory.
  const out = path.join(here, "build-asan");
  mkdirSync(out, { recursive: true });
  const cxx = process.env.CXX || "g++";
  execFileSync(
    cxx,
    ["-std=c++17", "-shared", "-fPIC", "-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-DNAPI_VERSION=8",
      `-I${headers}`, path.join(here, "src", "forward.cc"), "-o", path.join(out, "whipsfu_forward.node")],
    { stdio: "inherit" },
  );
  console.log(path.join(out, "whipsfu_forward.node"));
  process.exit(0);
}

const candidates = [
  process.env.npm_config_node_gyp,
  path.join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
  path.join(path.dirname(process.env.npm_execpath ?? ""), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"),
].filter((p) => p && existsSync(p));
if (candidates.length === 0) skip("node-gyp was not found next to npm");

const result = spawnSync(process.execPath, [candidates[0], "rebuild", `--nodedir=${prefix}`, "--silent"], { cwd: here, encoding: "utf8" });
if (result.status !== 0) {
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n").slice(-8).join("\n");
  skip(`node-gyp failed (a C++ compiler, make and python3 are needed):\n${output}`);
}
console.log("native forwarding addon built: native/build/Release/whipsfu_forward.node");
