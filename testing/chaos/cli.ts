// npm run chaos -- [--minutes N | --seconds N] --seed S [--topology three|witness] [--clients N]
//   [--locks N] [--readers N] [--out DIR] [--endpoints host:port,...] [--guard-url URL] [--faults kill,pause,...]
//   [--bugs stale-local-reads,grant-without-lease-check,read-before-applied] [--clock-rate-out-of-model R]
//   [--apply-delay-ms N] [--insecure] [--tls-ca FILE --tls-cert FILE --tls-key FILE]
// The harness's own cluster runs mutual TLS (a CA and certificates of its own) unless --insecure;
// against --endpoints, --tls-* name the deployment's CA and a client certificate (or --insecure).
// Prints the summary, writes history.jsonl and report.txt; exits 1 on any violation.

import { join } from "node:path";
import { parseArgs } from "node:util";
import { FAULT_KINDS, runChaos, type FaultKind } from "./run.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string" },
    seconds: { type: "string" },
    seed: { type: "string", default: "1" },
    topology: { type: "string", default: "three" },
    clients: { type: "string", default: "6" },
    locks: { type: "string", default: "3" },
    readers: { type: "string", default: "2" },
    out: { type: "string" },
    endpoints: { type: "string" },
    "guard-url": { type: "string" },
    faults: { type: "string" },
    bugs: { type: "string" },
    "clock-rate-out-of-model": { type: "string" },
    "apply-delay-ms": { type: "string" },
    insecure: { type: "boolean", default: false },
    "tls-ca": { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
  },
});

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}
const int = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} must be a non-negative integer, got ${v}`);
  return n;
};
const list = (v: string | undefined): string[] =>
  (v ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");

const topology = values.topology;
if (topology !== "three" && topology !== "witness") fail(`--topology must be three or witness, got ${topology}`);
if (values.minutes !== undefined && values.seconds !== undefined) fail("give --minutes or --seconds, not both");
const seconds =
  values.minutes !== undefined ? int("minutes", values.minutes) * 60 : values.seconds !== undefined ? int("seconds", values.seconds) : 30;
const faults = values.faults === undefined ? undefined : list(values.faults);
for (const f of faults ?? []) if (!FAULT_KINDS.includes(f as FaultKind)) fail(`unknown fault ${f}; known: ${FAULT_KINDS.join(", ")}`);
const rate = values["clock-rate-out-of-model"];
if (rate !== undefined && !(Number(rate) >= 0.5 && Number(rate) <= 2)) fail(`--clock-rate-out-of-model must be in [0.5, 2], got ${rate}`);
const tlsFiles = [values["tls-ca"], values["tls-cert"], values["tls-key"]];
if (tlsFiles.some((f) => f !== undefined) && !values.endpoints)
  fail("--tls-ca/--tls-cert/--tls-key are for --endpoints (the harness issues its own)");
if (tlsFiles.some((f) => f !== undefined) && values.insecure) fail("give --tls-* or --insecure, not both");
if (values.endpoints && !values.insecure && tlsFiles.some((f) => f === undefined))
  fail("--endpoints needs --tls-ca, --tls-cert and --tls-key (the deployment's CA and a client certificate), or --insecure");
const security = values.insecure
  ? { insecure: true }
  : { tls: { caFile: values["tls-ca"] ?? "", certFile: values["tls-cert"] ?? "", keyFile: values["tls-key"] ?? "" } };
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const result = await runChaos({
  seconds,
  seed: int("seed", values.seed),
  topology,
  clients: Math.max(1, int("clients", values.clients)),
  locks: Math.max(1, int("locks", values.locks)),
  readers: int("readers", values.readers),
  outDir: values.out ?? join("data", "chaos", stamp),
  ...(values.endpoints ? { endpoints: list(values.endpoints), security } : {}),
  insecure: values.insecure,
  ...(values["guard-url"] ? { guardUrl: values["guard-url"].replace(/\/+$/, "") } : {}),
  ...(faults ? { faults: faults as FaultKind[] } : {}),
  ...(values.bugs ? { bugs: list(values.bugs) } : {}),
  ...(rate !== undefined ? { clockRateOutOfModel: Number(rate) } : {}),
  ...(values["apply-delay-ms"] !== undefined ? { applyDelayMs: int("apply-delay-ms", values["apply-delay-ms"]) } : {}),
});
process.exitCode = result.violations.length === 0 ? 0 : 1;
