// The monitoring kit of deploy/ (issue 15 point 5) checked against the code: the Prometheus alert
// rules, their promtool unit tests, the example scrape configuration, the Grafana dashboard and
// the runbook. Unit half: no cluster is started.
//
// - Every metric an alert expression or a dashboard query names is one a member registers: the
//   registry of a fully bound VoterMetrics with the process metrics (what tenured serves; the
//   witness serves a subset) and the storage guard's counter (client-sdk/guard, served by the
//   applications that embed it), read now, never a list kept here. Histograms by their series
//   (_bucket, _sum, _count); `up` is Prometheus's own.
// - Every SAFETY metric (its help text says so) is used by an alert and shown on the dashboard.
// - Every alert has a severity, a summary, a description and a runbook_url to its section of
//   deploy/RUNBOOK.md; every alert has a runbook section and every section an alert; every
//   tenurectl command of the runbook parses with tenurectl's own parser and command table.
// - Every alert has a promtool test case that expects it to fire.
// - `promtool check rules`, `promtool test rules` and `promtool check config` pass, and every
//   dashboard query is valid PromQL (checked as recording rules). promtool comes
//   with Debian's `prometheus` package: when it is missing the test installs it with apt-get if
//   TEST_INSTALL_DEPS=1, else it skips these checks and says so. (Not a TENURE_* name:
//   tenured refuses TENURE_* variables it does not know, and the system tests' members inherit
//   the environment of the test run.)

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { Registry } from "prom-client";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { COMMANDS } from "../cli/commands.ts";
import { parseCommandLine } from "../cli/parse.ts";
import { VoterMetrics } from "../server/metrics/voter_metrics.ts";
import { rejectionsCounter } from "../client-sdk/guard/metrics.ts";
import { tenurectlCommands } from "./kits/command_lines.ts";
import { IDLE_FOLLOWER, testMetricsOptions } from "./kits/metrics_fixtures.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const RULES = "deploy/prometheus/tenure-alerts.yaml";
const RULE_TESTS = "deploy/prometheus/tenure-alerts.test.yaml";
const PROMETHEUS_CONFIG = "deploy/prometheus/prometheus.yaml";
const DASHBOARD = "deploy/grafana/tenure-dashboard.json";
const RUNBOOK = "deploy/RUNBOOK.md";
const read = (rel: string): string => readFileSync(join(repoRoot, rel), "utf8");

/** Series Prometheus makes itself for every target. */
const PROMETHEUS_SERIES = new Set(["up"]);

// ------------------------------------------------------------------ the registry, read now

const registry = (() => {
  const voter = new VoterMetrics(testMetricsOptions(true));
  const source = IDLE_FOLLOWER;
  voter.storage({} as never, false);
  voter.transport({ stats: () => ({}) } as never, [], () => ({ id: "a", role: "follower", term: 1, leader: "" }));
  voter.node({} as never);
  voter.bind({ ...source, machine: () => ({}) as never, subscribe: () => () => undefined });
  const metrics = new Map<string, { type: string; help: string }>();
  for (const m of voter.registry.getMetricsAsArray()) {
    const o = m as unknown as { name: string; type: string; help: string };
    metrics.set(o.name, { type: String(o.type), help: o.help });
  }
  // The storage guard's counter (client-sdk/guard), which applications embedding it expose.
  const guard = new Registry();
  rejectionsCounter(guard);
  for (const m of guard.getMetricsAsArray()) {
    const o = m as unknown as { name: string; type: string; help: string };
    metrics.set(o.name, { type: String(o.type), help: o.help });
  }
  after(() => voter.close());
  return metrics;
})();

/** The series names a metric is exposed as. */
const SERIES = new Map<string, string>();
for (const [name, { type }] of registry) {
  SERIES.set(name, name);
  if (type === "histogram" || type === "summary") {
    for (const suffix of ["_bucket", "_sum", "_count"]) SERIES.set(`${name}${suffix}`, name);
  }
}

/** Metric names in a PromQL expression: tenure_*, process_*, nodejs_* identifiers and `up`. */
function metricNames(expr: string): string[] {
  const names = [...expr.matchAll(/(?<![A-Za-z0-9_:"])((?:tenure|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1] ?? "");
  if (/(?<![A-Za-z0-9_:])up\s*[{[]/.test(expr)) names.push("up");
  return [...new Set(names)];
}

/** Names no member registers. */
function unknownMetrics(names: readonly string[]): string[] {
  return names.filter((n) => !SERIES.has(n) && !PROMETHEUS_SERIES.has(n));
}

const SAFETY = [...registry].filter(([, m]) => m.help.startsWith("SAFETY")).map(([n]) => n);

// ------------------------------------------------------------------ the files

interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
const rulesDoc = parseYaml(read(RULES)) as { groups: { name: string; rules: Rule[] }[] };
const alerts = rulesDoc.groups.flatMap((g) => g.rules).filter((r): r is Rule & { alert: string } => r.alert !== undefined);

interface Panel {
  readonly type: string;
  readonly title: string;
  readonly targets?: { readonly expr: string }[];
  readonly panels?: Panel[];
}
const dashboard = JSON.parse(read(DASHBOARD)) as {
  panels: Panel[];
  templating: { list: { name: string; query?: unknown; definition?: string }[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.flatMap((v) => (v.definition === undefined ? [] : [v.definition])),
];

const runbook = read(RUNBOOK);
/** ## headings of the runbook and the anchors GitHub gives them. */
const headings = [...runbook.matchAll(/^## (.+)$/gm)].map((m) => (m[1] ?? "").trim());
const anchorOf = (heading: string): string =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .replace(/ /g, "-");

// ------------------------------------------------------------------ the tests

describe("deploy/prometheus: alert rules", () => {
  it("there are rules, every alert once, in groups", () => {
    assert.ok(alerts.length >= 10, `only ${alerts.length} alerts in ${RULES}`);
    const names = alerts.map((a) => a.alert);
    assert.deepEqual(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
      "alerts named twice",
    );
    for (const n of names) assert.match(n, /^Tenure[A-Z][A-Za-z]+$/, `${n}: TenureCamelCase`);
  });

  it("every metric an expression names is one a member registers", () => {
    for (const a of alerts) {
      const names = metricNames(a.expr);
      assert.ok(names.length > 0, `${a.alert}: no metric found in ${a.expr}`);
      assert.deepEqual(unknownMetrics(names), [], `${a.alert}: ${a.expr} names metrics no member registers`);
    }
  });

  it("every alert has a severity, a summary, a description and its runbook section's URL", () => {
    for (const a of alerts) {
      assert.ok(["critical", "warning"].includes(a.labels?.["severity"] ?? ""), `${a.alert}: severity critical or warning`);
      assert.ok((a.annotations?.["summary"] ?? "").length > 10, `${a.alert}: a summary`);
      assert.ok((a.annotations?.["description"] ?? "").length > 20, `${a.alert}: a description`);
      assert.equal(a.annotations?.["runbook_url"], `${RUNBOOK}#${a.alert.toLowerCase()}`, `${a.alert}: runbook_url`);
    }
  });

  it("every SAFETY metric (its help text says so) has an alert; safety alerts page", () => {
    assert.ok(SAFETY.length >= 5, `only ${SAFETY.length} SAFETY metrics found: the registry read broke`);
    for (const m of SAFETY) {
      const using = alerts.filter((a) => metricNames(a.expr).includes(m));
      assert.ok(using.length > 0, `no alert on the SAFETY metric ${m}`);
      assert.ok(
        using.some((a) => a.labels?.["severity"] === "critical"),
        `the SAFETY metric ${m} has no critical alert`,
      );
    }
  });

  it("every alert has a promtool case that expects it to fire", () => {
    const doc = parseYaml(read(RULE_TESTS)) as {
      rule_files: string[];
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    assert.deepEqual(doc.rule_files, ["tenure-alerts.yaml"]);
    const firing = new Set(
      doc.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname)),
    );
    assert.deepEqual(
      alerts.map((a) => a.alert).filter((n) => !firing.has(n)),
      [],
      `alerts with no case in ${RULE_TESTS}`,
    );
  });

  it("the scrape configuration loads the rules and scrapes the metrics port of the deploy/ examples", () => {
    const config = parseYaml(read(PROMETHEUS_CONFIG)) as {
      rule_files: string[];
      scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[];
    };
    assert.deepEqual(config.rule_files, ["tenure-alerts.yaml"]);
    const jobs = config.scrape_configs.map((s) => s.job_name);
    for (const j of jobs) assert.match(j, /^tenure/, `job ${j}: the rules select jobs named tenure...`);
    const ports = new Set<string>();
    for (const f of ["deploy/compose/config/three-voters.yaml", "deploy/kubernetes/voters.yaml", "deploy/kubernetes/witness.yaml"]) {
      for (const m of read(f).matchAll(/metricsListen: \S+:(\d+)/g)) ports.add(m[1] ?? "");
    }
    assert.deepEqual([...ports], ["7201"], "every deploy/ example puts metricsListen on 7201");
    const targets = config.scrape_configs.flatMap((s) => (s.static_configs ?? []).flatMap((c) => c.targets));
    assert.ok(targets.length > 0 && targets.every((t) => t.endsWith(":7201")), `static targets on 7201: ${targets.join(", ")}`);
    assert.match(read(PROMETHEUS_CONFIG), /_metrics\._tcp\.tenure\.tenure\.svc\.cluster\.local/, "the Kubernetes job's SRV name");
  });
});

describe("deploy/grafana: the dashboard", () => {
  it("is a dashboard whose panels query only metrics a member registers", () => {
    assert.ok(panels.length >= 10);
    const ids = dashboard.panels.map((p) => (p as unknown as { id: number }).id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    for (const p of panels.filter((p) => p.type !== "row")) {
      assert.ok((p.targets ?? []).length > 0, `panel ${p.title}: no query`);
      for (const t of p.targets ?? []) {
        const names = metricNames(t.expr);
        assert.ok(names.length > 0, `panel ${p.title}: no metric in ${t.expr}`);
        assert.deepEqual(unknownMetrics(names), [], `panel ${p.title}: ${t.expr}`);
      }
    }
    for (const e of dashboardExprs) assert.deepEqual(unknownMetrics(metricNames(e)), [], e);
  });

  it("shows leadership, commit/applied, latencies, peers, leases/locks/tokens, requests, and every SAFETY metric", () => {
    const shown = new Set(dashboardExprs.flatMap((e) => metricNames(e).map((n) => SERIES.get(n) ?? n)));
    const wanted = [
      "tenure_term",
      "tenure_is_leader",
      "tenure_leader",
      "tenure_commit_index",
      "tenure_applied_index",
      "tenure_proposal_apply_seconds",
      "tenure_storage_save_seconds",
      "tenure_peer_rtt_seconds",
      "tenure_peer_replication_lag_entries",
      "tenure_leases_active",
      "tenure_locks_held",
      "tenure_tokens_issued_total",
      "tenure_requests_total",
      ...SAFETY,
    ];
    assert.deepEqual(
      wanted.filter((m) => !shown.has(m)),
      [],
      "metrics the dashboard does not show",
    );
    assert.ok(
      panels.some((p) => /safety/i.test(p.title)),
      "a safety signals panel",
    );
  });
});

describe("deploy/RUNBOOK.md", () => {
  it("every alert has a section (its anchor the alert name lowercased) and every section an alert", () => {
    const alertSections = headings.filter((h) => /^Tenure[A-Za-z]+$/.test(h));
    const names = alerts.map((a) => a.alert);
    assert.deepEqual(
      names.filter((n) => !alertSections.includes(n)),
      [],
      "alerts without a runbook section",
    );
    assert.deepEqual(
      alertSections.filter((h) => !names.includes(h)),
      [],
      "runbook sections of no alert",
    );
    assert.deepEqual(
      headings.filter((h) => !alertSections.includes(h)),
      ["Split-brain drill"],
      "the other sections",
    );
    for (const n of names) {
      const body = runbook.slice(runbook.indexOf(`## ${n}\n`)).split(/\n## /)[0] ?? "";
      for (const part of ["**Means.**", "**Check.**", "**Fix.**"]) assert.ok(body.includes(part), `${n}: ${part}`);
    }
  });

  it("every link to a section names one that exists", () => {
    const anchors = new Set(headings.map(anchorOf));
    for (const m of runbook.matchAll(/\]\(#([^)]+)\)/g)) assert.ok(anchors.has(m[1] ?? ""), `#${m[1]} is no section`);
  });

  it("the split-brain drill goes detect, freeze, find the leader, fence, reconcile, restore, by commands and alerts", () => {
    const drill = runbook.slice(runbook.indexOf("## Split-brain drill"));
    const steps = [...drill.matchAll(/^\d+\. \*\*([^*]+)\*\*/gm)].map((m) => m[1]);
    assert.deepEqual(steps, ["Detect.", "Freeze.", "Find the quorum's leader.", "Fence.", "Reconcile.", "Restore."]);
    const parts = drill.split(/^\d+\. /m).slice(1);
    for (const [i, part] of parts.entries()) {
      assert.ok(/tenurectl \w/.test(part) || /\]\(#tenure/.test(part), `step ${i + 1} names no command and no alert`);
    }
    const used = new Set(tenurectlCommands(drill).map((c) => c.argv.filter((a) => !a.startsWith("-"))[0]));
    for (const c of ["status", "freeze", "snapshot", "token", "lease", "thaw"]) assert.ok(used.has(c), `the drill uses tenurectl ${c}`);
  });

  it("every tenurectl command parses with tenurectl's own parser and command table", () => {
    const commands = tenurectlCommands(runbook);
    assert.ok(commands.length >= 20, `only ${commands.length} tenurectl commands found: the extraction broke`);
    for (const { line, argv } of commands) {
      try {
        const parsed = parseCommandLine(argv, COMMANDS);
        assert.equal(parsed.kind, "run", `"${line}" is a command, not a help request`);
      } catch (error) {
        assert.fail(`${RUNBOOK}: "${line}": ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  });
});

// ------------------------------------------------------------------ promtool

const PROMTOOL_PACKAGE = "prometheus";

function findPromtool(): string | null {
  const r = spawnSync("sh", ["-c", "command -v promtool"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() !== "" ? r.stdout.trim() : null;
}

/** promtool, installed with apt-get when missing and TEST_INSTALL_DEPS=1 allows it. */
function promtool(): { path: string } | { skip: string } {
  const found = findPromtool();
  if (found !== null) return { path: found };
  if (process.env["TEST_INSTALL_DEPS"] !== "1") {
    return {
      skip: `promtool is not installed: install Debian's ${PROMTOOL_PACKAGE} package (apt-get install --no-install-recommends ${PROMTOOL_PACKAGE}), or set TEST_INSTALL_DEPS=1 to let this test install it`,
    };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args: string[]) => spawnSync("apt-get", args, { encoding: "utf8", env, timeout: 600_000 });
  let r = apt(["install", "-y", "--no-install-recommends", PROMTOOL_PACKAGE]);
  if (r.status !== 0) {
    apt(["update"]);
    r = apt(["install", "-y", "--no-install-recommends", PROMTOOL_PACKAGE]);
  }
  const installed = findPromtool();
  assert.ok(installed !== null, `TEST_INSTALL_DEPS=1: apt-get install ${PROMTOOL_PACKAGE} failed:\n${r.stdout}\n${r.stderr}`);
  return { path: installed };
}

describe("promtool", () => {
  let tool: { path: string } | { skip: string } | null = null;
  const run = (t: { skip: (message: string) => void }, args: string[]): void => {
    tool ??= promtool();
    if ("skip" in tool) {
      t.skip(tool.skip);
      return;
    }
    const r = spawnSync(tool.path, args, { cwd: repoRoot, encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, `promtool ${args.join(" ")}:\n${r.stdout}\n${r.stderr}`);
  };

  it(`promtool check rules ${RULES}`, (t) => run(t, ["check", "rules", RULES]));
  it(`promtool test rules ${RULE_TESTS}: every alert fires on its failure and not on the healthy series`, (t) =>
    run(t, ["test", "rules", RULE_TESTS]));
  it(`promtool check config ${PROMETHEUS_CONFIG}`, (t) => run(t, ["check", "config", PROMETHEUS_CONFIG]));
  it("every dashboard query is valid PromQL (promtool check rules over them as recording rules)", (t) => {
    // Grafana's variables replaced by what they stand for: the job picked, the rate window.
    const exprs = dashboardExprs
      .filter((e) => !e.startsWith("label_values("))
      .map((e) => e.replaceAll("$job", "tenure").replaceAll("$__rate_interval", "1m"));
    const rules = { groups: [{ name: "dashboard", rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr })) }] };
    const dir = mkdtempSync(join(tmpdir(), "tenure-dashboard-promql-"));
    try {
      const file = join(dir, "dashboard-queries.yaml");
      writeFileSync(file, stringifyYaml(rules));
      run(t, ["check", "rules", file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
