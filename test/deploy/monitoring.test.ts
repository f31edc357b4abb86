// The operator's kit in deploy/ and docker-compose.yml: the Prometheus config and alert rules pass
// promtool (and their unit tests), and every metric the Grafana dashboard and the rules query is
// one a real server exports, so a renamed series cannot leave a blank panel or a silent alert.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../helpers/net.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { startServer, type TestServer } from "../helpers/server.js";
import { playStream, type WhepClient } from "../helpers/whep-client.js";
import { publishTestStream, type WhipClient } from "../helpers/whip-client.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PROMETHEUS_DIR = path.join(ROOT, "deploy/prometheus");
const GRAFANA_DIR = path.join(ROOT, "deploy/grafana");
const DASHBOARD = path.join(GRAFANA_DIR, "dashboards/whipsfu.json");

/** Series Prometheus makes itself for every target, not the server. */
const PROMETHEUS_OWN = new Set(["up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"]);
/** Declared from the start but with no sample until their first event; why, per name. */
const EVENT_ONLY: Record<string, string> = {
  live_ffmpeg_jobs: "labelled by kind and state: a sample exists only while an FFmpeg job does",
};

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless", "inf", "nan"]);

/**
 * Metric names a PromQL expression selects: identifiers that are not functions (followed by
 * `(`), keywords, label names (in matchers and in by/without/on/ignoring/group_* lists),
 * parts of numbers and durations, or Grafana variables.
 */
function metricNames(expr: string): Set<string> {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, "{}")
    .replace(/\[[^\]]*\]/g, "[]")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, " ")
    .replace(/\$\{?\w+\}?/g, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const before = m.index > 0 ? s[m.index - 1]! : " ";
    if (/[0-9.]/.test(before)) continue;
    if (
      s
        .slice(m.index + m[0].length)
        .trimStart()
        .startsWith("(")
    )
      continue;
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return names;
}

/** The `expr:` of every rule in a Prometheus rules file (inline, quoted or a `|`/`>` block). */
function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(?:-\s+)?expr:\s*(.*?)\s*$/.exec(lines[i]!);
    if (!m) continue;
    const indent = m[1]!.length;
    const value = m[2]!;
    if (/^[|>][-+]?$/.test(value)) {
      const block: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1]!.trim() === "" || /^\s*/.exec(lines[i + 1]!)![0].length > indent)) {
        block.push(lines[++i]!.trim());
      }
      out.push(block.join(" ").trim());
    } else if (/^".*"$/.test(value)) {
      out.push(JSON.parse(value) as string);
    } else if (/^'.*'$/.test(value)) {
      out.push(value.slice(1, -1).replace(/''/g, "'"));
    } else {
      out.push(value);
    }
  }
  return out;
}

interface GrafanaTarget {
  expr?: string;
}
interface GrafanaPanel {
  title?: string;
  type: string;
  datasource?: { type?: string; uid?: string };
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
}
interface GrafanaDashboard {
  uid: string;
  panels: GrafanaPanel[];
  templating?: { list: { name: string; query?: string | { query?: string } }[] };
}

function readDashboard(): GrafanaDashboard {
  return JSON.parse(readFileSync(DASHBOARD, "utf8")) as GrafanaDashboard;
}

function allPanels(panels: GrafanaPanel[]): GrafanaPanel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every PromQL expression of the dashboard: panel targets and variable queries. */
function dashboardExpressions(d: GrafanaDashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d.panels)) {
    for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title ?? p.type}"`, expr: t.expr });
  }
  for (const v of d.templating?.list ?? []) {
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (!q) continue;
    // label_values(<selector>, <label>): the second argument is a label, not a metric.
    const lv = /^\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$/.exec(q);
    out.push({ where: `variable $${v.name}`, expr: lv ? lv[1]! : q });
  }
  return out;
}

/** The dashboard's expressions with Grafana's variables replaced, as PromQL Prometheus accepts. */
function concretePromql(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, "1m").replace(/\$\{?\w+\}?/g, ".*");
}

function rulesFileExpressions(): string[] {
  return ruleExpressions(readFileSync(path.join(PROMETHEUS_DIR, "alerts.yml"), "utf8"));
}

/** Metric name -> where it is used. */
function usedMetrics(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const add = (where: string, expr: string): void => {
    for (const n of metricNames(expr)) used.set(n, [...(used.get(n) ?? []), where]);
  };
  for (const e of rulesFileExpressions()) add("alerts.yml", e);
  for (const { where, expr } of dashboardExpressions(readDashboard())) add(where, expr);
  return used;
}

interface Scrape {
  /** Family name -> TYPE. */
  declared: Map<string, string>;
  /** Names with at least one sample line, and their lines. */
  samples: Map<string, string[]>;
}

function parseExposition(text: string): Scrape {
  const declared = new Map<string, string>();
  const samples = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) declared.set(type[1]!, type[2]!);
    const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/.exec(line);
    if (sample) samples.set(sample[1]!, [...(samples.get(sample[1]!) ?? []), line]);
  }
  return { declared, samples };
}

/** The declared family a used name belongs to (histogram and summary parts map to theirs). */
function familyOf(name: string, scrape: Scrape): string | undefined {
  if (scrape.declared.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && ["histogram", "summary"].includes(scrape.declared.get(m[1]!) ?? "")) return m[1];
  return undefined;
}

async function scrape(server: TestServer): Promise<Scrape> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

function promtool(args: string[], cwd = PROMETHEUS_DIR): { status: number | null; output: string } {
  const res = spawnSync("promtool", args, { cwd, encoding: "utf8", timeout: 60_000 });
  return { status: res.status, output: `${res.stdout ?? ""}${res.stderr ?? ""}${res.error ? res.error.message : ""}` };
}

describe("reading PromQL for metric names", () => {
  it("keeps selectors, drops functions, keywords, labels, numbers and variables", () => {
    expect([...metricNames('sum by (job, instance, limit) (increase(live_capacity_refusals_total{job="whipsfu"}[10m])) > 0')]).toEqual([
      "live_capacity_refusals_total",
    ]);
    expect([...metricNames('up{job="whipsfu"} == 0 or absent(up{job="whipsfu"})')]).toEqual(["up"]);
    expect([...metricNames('8 * rate(a_total{room=~"$room"}[$__rate_interval]) * on(instance, room) group_left(x) b / ignoring (c) d offset 5m')]).toEqual([
      "a_total",
      "b",
      "d",
    ]);
    expect([...metricNames("histogram_quantile(0.99, sum without (pod) (rate(x_bucket[5m]))) > 1e3")]).toEqual(["x_bucket"]);
    expect([...metricNames('max_over_time(y{a="}{("}[5m:1m]) > bool 2')]).toEqual(["y"]);
  });

  it("finds every rule's expression in a rules file", () => {
    const yaml = readFileSync(path.join(PROMETHEUS_DIR, "alerts.yml"), "utf8");
    const rules = yaml.split("\n").filter((l) => /^\s*-\s+(alert|record):/.test(l)).length;
    const exprs = ruleExpressions(yaml);
    expect(rules).toBeGreaterThan(0);
    expect(exprs).toHaveLength(rules);
    for (const e of exprs) expect(metricNames(e).size, e).toBeGreaterThan(0);
  });
});

const promtoolGate = requireOrSkip("promtool");

describe.skipIf(!promtoolGate.ok)(promtoolGate.title("deploy/prometheus with promtool"), () => {
  it("prometheus.yml and the rules it loads are valid", () => {
    const r = promtool(["check", "config", "prometheus.yml"]);
    expect(r.status, r.output).toBe(0);
  });

  it("alerts.yml passes check rules", () => {
    const r = promtool(["check", "rules", "alerts.yml"]);
    expect(r.status, r.output).toBe(0);
  });

  it("every alert fires and stays quiet as alerts.test.yml expects", () => {
    const r = promtool(["test", "rules", "alerts.test.yml"]);
    expect(r.status, r.output).toBe(0);
    // Every alert of alerts.yml has a test.
    const alerts = [...readFileSync(path.join(PROMETHEUS_DIR, "alerts.yml"), "utf8").matchAll(/^\s*-\s+alert:\s*(\S+)/gm)].map((m) => m[1]!);
    const tests = readFileSync(path.join(PROMETHEUS_DIR, "alerts.test.yml"), "utf8");
    for (const a of alerts) expect(tests, `no test for ${a}`).toMatch(new RegExp(`alertname: ${a}\\b`));
  });

  it("every dashboard expression is PromQL Prometheus accepts", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "dashboard-promql-"));
    try {
      // As recording rules, so promtool parses each one.
      const rules = dashboardExpressions(readDashboard()).map(
        ({ expr }, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(concretePromql(expr))}\n`,
      );
      writeFileSync(path.join(dir, "dashboard.yml"), `groups:\n  - name: dashboard\n    rules:\n${rules.join("")}`);
      const r = promtool(["check", "rules", "dashboard.yml"], dir);
      expect(r.status, r.output).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("deploy/grafana and docker-compose.yml fit together", () => {
  const compose = readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8");
  const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");

  it("every path the compose file mounts exists", () => {
    const mounts = [...compose.matchAll(/^\s*-\s+"?(\.\/[^:"]+):/gm)].map((m) => m[1]!);
    expect(mounts.length).toBeGreaterThanOrEqual(3);
    for (const m of mounts) expect(existsSync(path.join(ROOT, m)), m).toBe(true);
  });

  it("publishes the Dockerfile's HTTP port and its whole UDP range 1:1", () => {
    const port = /^\s*PORT=(\d+)/m.exec(dockerfile)?.[1];
    const range = /ICE_PORT_RANGE=(\d+-\d+)/.exec(dockerfile)?.[1];
    expect(port).toBeDefined();
    expect(range).toBeDefined();
    expect(dockerfile).toMatch(new RegExp(`^EXPOSE ${port} ${range}/udp$`, "m"));
    expect(compose).toContain(`"${port}:${port}"`);
    expect(compose).toContain(`"${range}:${range}/udp"`);
    // Prometheus scrapes the server by its compose service name on that port.
    expect(readFileSync(path.join(PROMETHEUS_DIR, "prometheus.yml"), "utf8")).toContain(`"sfu:${port}"`);
  });

  it("the dashboard uses the provisioned datasource and sits where the provider looks", () => {
    const datasource = readFileSync(path.join(GRAFANA_DIR, "provisioning/datasources/prometheus.yml"), "utf8");
    const uid = /^\s*uid:\s*(\S+)/m.exec(datasource)?.[1];
    expect(uid).toBeDefined();
    for (const p of allPanels(readDashboard().panels)) {
      if (p.type === "row" || p.type === "text") continue;
      expect(p.datasource?.uid, `panel "${p.title}"`).toBe(uid);
    }
    const provider = readFileSync(path.join(GRAFANA_DIR, "provisioning/dashboards/whipsfu.yml"), "utf8");
    const providerPath = /^\s*path:\s*(\S+)/m.exec(provider)?.[1];
    expect(compose).toContain(`./deploy/grafana/dashboards:${providerPath}:ro`);
  });
});

describe("the metrics the dashboard and the rules query", () => {
  const ffmpeg = requireOrSkip("ffmpeg");
  let server: TestServer;
  const used = usedMetrics();
  const open: { close(o?: { vanish?: boolean }): Promise<void> }[] = [];

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await server?.close();
    server?.removeRecordDir();
  });

  it("are all declared by a fresh server", async () => {
    expect(used.size).toBeGreaterThan(10);
    const s = await scrape(server);
    const missing = [...used].filter(([name]) => !PROMETHEUS_OWN.has(name) && familyOf(name, s) === undefined);
    expect(missing.map(([name, where]) => `${name} (used in ${[...new Set(where)].join(", ")})`)).toEqual([]);
  });

  it.skipIf(!ffmpeg.ok)(ffmpeg.title("all have samples once a room has a publisher and a viewer"), async () => {
    const room = "monitoring";
    const pub: WhipClient = (await publishTestStream(server.whipUrl(room), { video: { codec: "VP8" }, audio: true })).client;
    open.push(pub);
    await sleep(500);
    const { client, result } = await playStream(server.whepUrl(room));
    const sub: WhepClient = client;
    open.push(sub);
    expect(result.status).toBe(201);
    await sleep(1500);

    const s = await scrape(server);
    const withoutSamples = [...used.keys()].filter((name) => {
      if (PROMETHEUS_OWN.has(name) || name in EVENT_ONLY) return false;
      return !s.samples.has(name);
    });
    expect(withoutSamples).toEqual([]);
    // The per-room series carry the room.
    for (const name of ["live_subscribers", "live_rtp_bytes_total", "live_rtp_packets_total"]) {
      expect(used.has(name), name).toBe(true);
      expect(
        s.samples.get(name)?.some((l) => l.includes(`room="${room}"`)),
        name,
      ).toBe(true);
    }
    // What is left out above is still declared.
    for (const name of Object.keys(EVENT_ONLY)) expect(s.declared.has(name), name).toBe(true);
  });
});
