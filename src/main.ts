import { buildApp } from "./app.js";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createServer } from "./server.js";

// Node 20 left support in April 2026 and werift declares Node 22 or newer; the suite still passes
// on 20, so it runs, with a warning. Older Nodes lack what werift and this server use.
const nodeMajor = Number(process.versions.node.split(".")[0]);
if (nodeMajor < 20) {
  process.stderr.write(`Node ${process.versions.node} is too old: this server needs Node 20 or newer (24 LTS recommended)\n`);
  process.exit(2);
}

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`configuration error: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const server = createServer(config);
if (nodeMajor < 22) {
  server.log.warn(
    { node: process.versions.node },
    "this Node is past its end of life and below werift's declared minimum (22): it works today, but run Node 24 LTS or newer",
  );
}
const app = await buildApp(server);
try {
  await app.listen({ port: config.port, host: config.host });
} catch (err) {
  app.log.error({ err }, "could not listen");
  await app.close();
  process.exit(1);
}
server.start();

// werift runs many promise chains of its own per peer (ICE checks, DTLS retransmits, TURN); one
// peer's failure inside them must not end every room. Anything not from werift still crashes.
const fromWerift = (err: unknown): boolean => err instanceof Error && /node_modules[\\/]werift/.test(err.stack ?? "");
process.on("uncaughtException", (err) => {
  app.log.error({ err }, "uncaught exception");
  if (!fromWerift(err)) process.exit(1);
});
process.on("unhandledRejection", (err) => {
  app.log.error({ err }, "unhandled rejection");
  if (!fromWerift(err)) process.exit(1);
});

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  // A cluster node drains first on SIGTERM (DRAIN_SECONDS): viewers move, publishers may finish.
  const drainMs = signal === "SIGTERM" && server.cluster ? config.drainSeconds * 1000 : 0;
  app.log.info({ signal }, "shutting down: ending rooms and finalising recordings");
  const force = setTimeout(() => {
    app.log.error("shutdown took over 10 s; exiting");
    process.exit(1);
  }, 10_000 + drainMs);
  force.unref();
  if (drainMs > 0) await server.cluster?.drain(drainMs);
  await app.close();
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
