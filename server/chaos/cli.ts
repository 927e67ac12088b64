// npm run chaos -- --seconds N --seed S [--topology three|witness] [--clients N] [--locks N]
//   [--out DIR] [--endpoints host:port,...]. Exits 1 on any violation.

import { join } from "node:path";
import { parseArgs } from "node:util";
import { runChaos } from "./run.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    seed: { type: "string", default: "1" },
    topology: { type: "string", default: "three" },
    clients: { type: "string", default: "6" },
    locks: { type: "string", default: "3" },
    out: { type: "string" },
    endpoints: { type: "string" },
  },
});

const int = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  return n;
};
const topology = values.topology;
if (topology !== "three" && topology !== "witness") throw new Error(`--topology must be three or witness, got ${topology}`);
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const result = await runChaos({
  seconds: int("seconds", values.seconds),
  seed: int("seed", values.seed),
  topology,
  clients: Math.max(1, int("clients", values.clients)),
  locks: Math.max(1, int("locks", values.locks)),
  outDir: values.out ?? join("data", "chaos", stamp),
  ...(values.endpoints ? { endpoints: values.endpoints.split(",").map((e) => e.trim()).filter((e) => e !== "") } : {}),
});
process.exitCode = result.violations.length === 0 ? 0 : 1;
