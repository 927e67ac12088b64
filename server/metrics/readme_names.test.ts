// README "Metrics and health" lists every metric a member registers: the table there and the
// registry of a fully bound VoterMetrics (what tenured records) name the same metrics, with the
// same type and labels, so the documentation cannot drift from the code. The witness's metrics
// (MemberMetrics) are the table's rows above tenure_requests_total.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import { IDLE_FOLLOWER, testMetricsOptions } from "../../testing/kits/metrics_fixtures.ts";
import { MemberMetrics } from "./member_metrics.ts";
import { VoterMetrics } from "./voter_metrics.ts";

interface Row {
  readonly type: string;
  readonly labels: string;
}

function readmeRows(): Map<string, Row> {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("### Metrics and health");
  assert.ok(start >= 0, "README has a Metrics and health section");
  const end = readme.indexOf("\n### ", start + 1);
  const rows = new Map<string, Row>();
  for (const line of readme.slice(start, end < 0 ? undefined : end).split("\n")) {
    const m = /^\| `(tenure_[a-z_]+)` \| (\w+) \|([^|]*)\|/.exec(line);
    if (m === null) continue;
    const labels = (m[3] ?? "")
      .replaceAll("`", "")
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== "")
      .join(",");
    assert.ok(!rows.has(m[1] ?? ""), `${m[1]} listed twice`);
    rows.set(m[1] ?? "", { type: m[2] ?? "", labels });
  }
  return rows;
}

const options = testMetricsOptions();
const source = IDLE_FOLLOWER;

function registered(m: MemberMetrics): Map<string, Row> {
  const out = new Map<string, Row>();
  for (const metric of m.registry.getMetricsAsArray()) {
    const o = metric as unknown as MetricObjectWithValues<MetricValue<string>> & { labelNames?: string[] };
    out.set(o.name, { type: String(o.type), labels: (o.labelNames ?? []).join(",") });
  }
  return out;
}

describe("README metric names", () => {
  it("the table lists exactly the metrics tenured registers, with their types and labels", () => {
    const voter = new VoterMetrics(options);
    voter.storage({} as never, false);
    voter.transport({ stats: () => ({}) } as never, [], () => ({ id: "a", role: "follower", term: 1, leader: "" }));
    voter.node({} as never);
    voter.bind({ ...source, machine: () => ({}) as never, subscribe: () => () => undefined });
    const code = registered(voter);
    const docs = readmeRows();
    assert.deepEqual([...docs.keys()].sort(), [...code.keys()].sort());
    for (const [name, row] of code) assert.deepEqual(docs.get(name), row, name);
    voter.close();
  });

  it("a witness registers the rows above tenure_requests_total (and the request metrics, which it never records)", () => {
    const witness = new MemberMetrics(options);
    witness.storage({} as never, false);
    witness.transport({ stats: () => ({}) } as never, [], () => ({ id: "a", role: "follower", term: 1, leader: "" }));
    witness.bind(source);
    const names = [...readmeRows().keys()];
    const above = names.slice(0, names.indexOf("tenure_requests_total"));
    const code = [...registered(witness).keys()].filter((n) => !n.startsWith("tenure_request"));
    assert.deepEqual(code.sort(), above.sort());
    witness.close();
  });
});
