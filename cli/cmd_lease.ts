// Lease commands. `lease grant` only grants: tenurectl exits and nothing renews the lease, which
// then lives for its TTL (use it with `lock acquire --lease ID`, then revoke it). Lease ids are
// printed as the server sends them (decimal strings).

import { EXIT_OK, UsageError } from "./exit_codes.ts";
import { positiveInt } from "./globals.ts";
import { keyValues, table } from "./output.ts";
import type { CommandContext, CommandSpec } from "./spec.ts";

type Msg = Record<string, unknown>;

export const DEFAULT_LEASE_TTL_MS = 60_000;
const LIST_PAGE = 1000;

function call(ctx: CommandContext): { signal: AbortSignal; timeoutMs: number } {
  return { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs };
}

/** A lease id argument: a positive decimal integer (the server checks the rest). */
export function leaseIdArg(value: string | undefined, what = "LEASE_ID"): string {
  if (value === undefined || !/^[1-9]\d{0,19}$/.test(value))
    throw new UsageError(`${what} must be a positive integer, not "${value ?? ""}"`);
  return value;
}

async function grant(ctx: CommandContext): Promise<number> {
  const ttlMs = positiveInt(ctx.values, "ttl-ms") ?? DEFAULT_LEASE_TTL_MS;
  const res = await ctx.client().rpc.mutate("Lease", "Grant", { ttlMs }, call(ctx));
  const v = (res["validUntil"] ?? {}) as Msg;
  const out = { leaseId: String(res["leaseId"]), ttlMs: Number(v["ttlMs"] ?? ttlMs), serverDeadlineMs: Number(v["serverDeadlineMs"] ?? 0) };
  ctx.out.result(out, () =>
    keyValues([
      ["lease", out.leaseId],
      ["ttl", `${out.ttlMs} ms (not renewed: tenurectl exits)`],
    ]),
  );
  return EXIT_OK;
}

async function revoke(ctx: CommandContext): Promise<number> {
  const leaseId = leaseIdArg(ctx.positionals[0]);
  await ctx.client().rpc.mutate("Lease", "Revoke", { leaseId }, call(ctx));
  ctx.out.result({ leaseId, revoked: true }, () => `lease ${leaseId} revoked\n`);
  return EXIT_OK;
}

async function ttl(ctx: CommandContext): Promise<number> {
  const leaseId = leaseIdArg(ctx.positionals[0]);
  const r = await ctx.client().rpc.read("Lease", "TimeToLive", { leaseId }, call(ctx));
  const out = {
    leaseId: String(r["leaseId"]),
    owner: String(r["owner"] ?? ""),
    clientId: String(r["clientId"] ?? ""),
    ttlMs: Number(r["ttlMs"] ?? 0),
    remainingMs: Number(r["remainingMs"] ?? 0),
    expiring: r["expiring"] === true,
    locks: ((r["locks"] ?? []) as unknown[]).map(String),
    elections: ((r["elections"] ?? []) as unknown[]).map(String),
  };
  ctx.out.result(out, () =>
    keyValues([
      ["lease", out.leaseId],
      ["owner", out.owner || "-"],
      ["ttl", `${out.ttlMs} ms`],
      ["remaining", `${out.remainingMs} ms (leader time)${out.expiring ? ", expiring" : ""}`],
      ["locks", out.locks.join(",") || "-"],
      ["elections", out.elections.join(",") || "-"],
    ]),
  );
  return EXIT_OK;
}

async function list(ctx: CommandContext): Promise<number> {
  const leases: { leaseId: string; owner: string; clientId: string; ttlMs: number }[] = [];
  for (let after = "0"; ; ) {
    const r = await ctx.client().rpc.read("Lease", "List", { afterLeaseId: after, limit: LIST_PAGE }, call(ctx));
    const page = (r["leases"] ?? []) as Msg[];
    for (const l of page) {
      leases.push({
        leaseId: String(l["leaseId"]),
        owner: String(l["owner"] ?? ""),
        clientId: String(l["clientId"] ?? ""),
        ttlMs: Number(l["ttlMs"] ?? 0),
      });
    }
    const last = leases[leases.length - 1];
    if (r["more"] !== true || page.length === 0 || last === undefined) break;
    after = last.leaseId;
  }
  ctx.out.result({ leases }, () =>
    table(
      ["LEASE", "TTL_MS", "OWNER", "CLIENT_ID"],
      leases.map((l) => [l.leaseId, String(l.ttlMs), l.owner || "-", l.clientId]),
    ),
  );
  return EXIT_OK;
}

const TTL_OPTION = {
  "ttl-ms": { type: "string", valueName: "MS", description: `the lease's TTL (default ${DEFAULT_LEASE_TTL_MS})` },
} as const;

export const LEASE_COMMANDS: readonly CommandSpec[] = [
  {
    path: ["lease", "grant"],
    summary: "grant a lease (not renewed: it lives for its TTL)",
    positionals: [],
    options: TTL_OPTION,
    run: grant,
  },
  {
    path: ["lease", "revoke"],
    summary: "revoke a lease: its locks and elections pass on at once",
    positionals: [{ name: "LEASE_ID", description: "the lease" }],
    options: {},
    run: revoke,
  },
  { path: ["lease", "list"], summary: "your leases (an admin: every lease)", positionals: [], options: {}, run: list },
  {
    path: ["lease", "ttl"],
    summary: "a lease's TTL, time left, and the locks and elections it holds",
    positionals: [{ name: "LEASE_ID", description: "the lease" }],
    options: {},
    run: ttl,
  },
];
