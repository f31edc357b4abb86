// What a server process keeps in its V8 heap, measured from outside: a script preloaded into the
// server (node --expose-gc --import <probe>) answers a message on its IPC channel with a full GC
// and its heap figures, or a heap snapshot, and SIGUSR2 with a full GC alone; readSnapshot()
// counts a snapshot. Writing a snapshot takes the process's RSS up by about its size for good
// (the allocator keeps what the snapshot used): measure RSS before taking one, never after.
// Used by the leak test (test/e2e/leak.test.ts) and the soak (bench/soak.test.ts).
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const PROBE_SCRIPT = `import v8 from "node:v8";
const tick = () => new Promise((r) => setImmediate(r));
process.on("SIGUSR2", () => globalThis.gc?.());
process.on("message", async (m) => {
  if (!m || typeof m.heapProbe !== "number") return;
  for (let i = 0; i < 4; i++) { globalThis.gc(); await tick(); }
  try {
    const snapshot = m.file ? v8.writeHeapSnapshot(m.file) : undefined;
    const u = process.memoryUsage();
    const c = v8.getHeapCodeStatistics();
    const code = c.code_and_metadata_size + c.bytecode_and_metadata_size;
    process.send({ heapProbe: m.heapProbe, probe: { heapUsed: u.heapUsed, code, external: u.external, rss: u.rss, snapshot } });
  } catch (err) {
    process.send({ heapProbe: m.heapProbe, error: String(err) });
  }
});
`;

/** Writes the probe into `dir`; returns the node arguments that preload it (spawn with an "ipc" stdio entry). */
export function heapProbeArgs(dir: string): string[] {
  const file = path.join(dir, "heap-probe.mjs");
  writeFileSync(file, PROBE_SCRIPT);
  return ["--expose-gc", "--import", pathToFileURL(file).href];
}

export interface HeapProbeResult {
  heapUsed: number;
  /** Of heapUsed, V8's compiled code and bytecode with their metadata. */
  code: number;
  external: number;
  rss: number;
  /** Path of the heap snapshot written, when one was asked for. */
  snapshot?: string;
}

/** Asks a server started with heapProbeArgs() for a full GC, then its heap figures and, given a file, a heap snapshot. */
export class HeapProbe {
  private next = 0;
  private readonly waiting = new Map<number, (answer: { probe?: HeapProbeResult; error?: string }) => void>();

  constructor(private readonly child: ChildProcess) {
    child.on("message", (m: { heapProbe?: number; probe?: HeapProbeResult; error?: string }) => {
      if (typeof m?.heapProbe !== "number") return;
      this.waiting.get(m.heapProbe)?.(m);
      this.waiting.delete(m.heapProbe);
    });
  }

  take(file?: string, timeoutMs = 60_000): Promise<HeapProbeResult> {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not answer the heap probe within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.set(id, (answer) => {
        clearTimeout(timer);
        if (answer.probe) resolve(answer.probe);
        else reject(new Error(`heap probe: ${answer.error}`));
      });
      this.child.send({ heapProbe: id, file });
    });
  }
}

interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/**
 * The backing hash tables of WeakMaps and WeakSets (node offsets). Their size is the table's
 * capacity, which follows the most entries the collection ever held at once (prom-client's label
 * cache gets one per series at each scrape, Node's DOMException internals one per abort) and
 * shrinks only when it is rehashed; the objects it keeps alive are counted themselves.
 */
function weakTables(s: HeapSnapshotFile): Set<number> {
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const [nameAt, countAt] = [fields.indexOf("name"), fields.indexOf("edge_count")];
  const edgeFields = s.snapshot.meta.edge_fields;
  const edgeWidth = edgeFields.length;
  const [edgeTypeAt, edgeNameAt, edgeToAt] = [edgeFields.indexOf("type"), edgeFields.indexOf("name_or_index"), edgeFields.indexOf("to_node")];
  const edgeTypes = s.snapshot.meta.edge_types[0];
  const tables = new Set<number>();
  let e = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const count = s.nodes[i + countAt]!;
    const name = s.strings[s.nodes[i + nameAt]!];
    const weak = name === "WeakMap" || name === "WeakSet";
    for (let k = 0; k < count; k++, e += edgeWidth) {
      if (weak && edgeTypes[s.edges[e + edgeTypeAt]!] === "internal" && s.strings[s.edges[e + edgeNameAt]!] === "table") tables.add(s.edges[e + edgeToAt]!);
    }
  }
  return tables;
}

/** V8's compiled code (bytecode, feedback, machine code) and object layouts, memory outside the heap. */
const NOT_OBJECTS = new Set(["code", "object shape", "native", "synthetic"]);
const STRINGS = new Set(["string", "concatenated string", "sliced string"]);

export interface HeapCount {
  /** Self sizes of JavaScript objects, closures and their contexts, arrays, numbers. */
  objectBytes: number;
  /** Self sizes of strings. */
  stringBytes: number;
  /** Live instances of each class asked about. */
  instances: Map<string, number>;
}

/**
 * Counts a heap snapshot. Compiled code and its bookkeeping are left out (they grow as functions
 * get optimised, not with what the program keeps), and so are the lists of code depending on an
 * object layout (V8's WeakArrayLists, more of them as more code is optimised) and the capacity of
 * weak collections' hash tables (weakTables()).
 */
export function readSnapshot(file: string, classes: readonly string[] = []): HeapCount {
  const s = JSON.parse(readFileSync(file, "utf8")) as HeapSnapshotFile;
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = [fields.indexOf("type"), fields.indexOf("name"), fields.indexOf("self_size")];
  const types = s.snapshot.meta.node_types[0];
  const wanted = new Set(classes);
  const tables = weakTables(s);
  const instances = new Map(classes.map((c) => [c, 0]));
  let objectBytes = 0;
  let stringBytes = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt]!]!;
    if (NOT_OBJECTS.has(type) || tables.has(i)) continue;
    const size = s.nodes[i + sizeAt]!;
    if (STRINGS.has(type)) {
      stringBytes += size;
      continue;
    }
    const name = s.strings[s.nodes[i + nameAt]!]!;
    if (type === "hidden" && name === "system / WeakArrayList") continue;
    objectBytes += size;
    if (type === "object" && wanted.has(name)) instances.set(name, instances.get(name)! + 1);
  }
  return { objectBytes, stringBytes, instances };
}
