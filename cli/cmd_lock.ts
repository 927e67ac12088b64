// Lock commands: one-shot acquire / release / status (the lock then lives as long as its lease),
// and `lock NAME -- command args`, which holds the lock while the command runs (supervise.ts).

import { performance } from "node:perf_hooks";
import { TenureError } from "../client-sdk/index.ts";
import { EXIT_FAILED, EXIT_OK, UsageError } from "./exit_codes.ts";
import { positiveInt, str } from "./globals.ts";
import { DEFAULT_LEASE_TTL_MS, leaseIdArg } from "./cmd_lease.ts";
import { keyValues } from "./output.ts";
import type { CommandContext, CommandSpec } from "./spec.ts";
import { superviseChild } from "./supervise.ts";

type Msg = Record<string, unknown>;

export const DEFAULT_RUN_TTL_MS = 10_000;
/** SIGKILL at the latest this long before the validity ends: a few poll intervals. */
export const KILL_MARGIN_MS = 100;
const POLL_MS = 20;
/** Lets the server's own TIMEOUT answer a wait before our deadline cuts the call. */
const WAIT_SLACK_MS = 2_000;

/** The longest SIGTERM-to-SIGKILL grace a TTL allows: SIGTERM must come after the renewal sent a
 *  third of the TTL in has had time to land (about another third of the TTL). */
export function killGraceMaxMs(ttlMs: number): number {
  return Math.floor(ttlMs / 3) - 2 * KILL_MARGIN_MS;
}

export function defaultKillGraceMs(ttlMs: number): number {
  return Math.min(5_000, Math.floor(ttlMs / 4));
}

function waitOptions(ctx: CommandContext): { wait: boolean; waitMs: number } {
  const noWait = ctx.values["no-wait"] === true;
  const waitMs = positiveInt(ctx.values, "wait-ms", 0) ?? 0;
  if (noWait && waitMs > 0) throw new UsageError("--no-wait and --wait-ms contradict each other");
  return { wait: !noWait, waitMs };
}

async function acquire(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0] ?? "";
  const { wait, waitMs } = waitOptions(ctx);
  const rpc = ctx.client().rpc;
  const given = str(ctx.values, "lease");
  if (given !== undefined && ctx.values["ttl-ms"] !== undefined)
    throw new UsageError("--lease and --ttl-ms contradict each other (the lease has its TTL)");
  let leaseId = given === undefined ? undefined : leaseIdArg(given, "--lease");
  let granted = false;
  if (leaseId === undefined) {
    const ttlMs = positiveInt(ctx.values, "ttl-ms") ?? DEFAULT_LEASE_TTL_MS;
    const g = await rpc.mutate("Lease", "Grant", { ttlMs }, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
    leaseId = String(g["leaseId"]);
    granted = true;
  }
  let res: Msg;
  try {
    res = await rpc.mutate(
      "Lock",
      "Acquire",
      { name, leaseId, wait, timeoutMs: wait ? waitMs : 0 },
      {
        blocking: wait,
        signal: ctx.signal,
        ...(wait ? (waitMs > 0 ? { timeoutMs: waitMs + WAIT_SLACK_MS } : {}) : { timeoutMs: ctx.globals.timeoutMs }),
      },
    );
  } catch (error) {
    // Our own lease holds nothing anyone asked for: free it (and any grant it may have got).
    if (granted) await rpc.mutate("Lease", "Revoke", { leaseId }, { timeoutMs: 5_000 }).catch(() => {});
    throw error;
  }
  const out = { name, token: String(res["token"]), leaseId };
  ctx.out.result(out, () =>
    keyValues([
      ["lock", name],
      ["token", out.token],
      [
        "lease",
        `${leaseId}${granted ? " (granted for this lock, not renewed: held until it expires, or lock release / lease revoke)" : ""}`,
      ],
    ]),
  );
  return EXIT_OK;
}

async function release(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0] ?? "";
  const token = leaseIdArg(ctx.positionals[1], "TOKEN");
  const res = await ctx.client().rpc.mutate("Lock", "Release", { name, token }, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
  const released = res["released"] === true;
  ctx.out.result({ name, token, released }, () =>
    released ? `lock ${name} released\n` : `lock ${name} was not held with token ${token}\n`,
  );
  return released ? EXIT_OK : EXIT_FAILED;
}

async function status(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0] ?? "";
  const r = await ctx.client().rpc.read("Lock", "Status", { name }, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
  const holder = (r["holder"] ?? null) as Msg | null;
  const state = String(r["state"] ?? "")
    .replace(/^MUTEX_STATE_/, "")
    .toLowerCase();
  const out = {
    name,
    state,
    token: holder ? String(holder["token"]) : null,
    holderLeaseId: holder && String(holder["leaseId"]) !== "0" ? String(holder["leaseId"]) : null,
    grantedAtMs: holder ? Number(holder["grantedAtMs"] ?? 0) : null,
    waiterCount: Number(r["waiterCount"] ?? 0),
    delayUntilMs: Number(r["delayUntilMs"] ?? 0),
  };
  ctx.out.result(out, () =>
    keyValues([
      ["lock", name],
      ["state", state],
      ["token", out.token ?? "-"],
      ["holder lease", out.holderLeaseId ?? (holder ? "(not yours)" : "-")],
      ["waiters", String(out.waiterCount)],
      ...(out.delayUntilMs > 0 ? ([["delayed until", `${new Date(out.delayUntilMs).toISOString()} (leader time)`]] as const) : []),
    ]),
  );
  return EXIT_OK;
}

async function run(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0] ?? "";
  const ttlMs = positiveInt(ctx.values, "ttl-ms", 1_000) ?? DEFAULT_RUN_TTL_MS;
  const graceMax = killGraceMaxMs(ttlMs);
  const killGraceMs = positiveInt(ctx.values, "kill-grace-ms", 1) ?? defaultKillGraceMs(ttlMs);
  if (killGraceMs > graceMax) {
    throw new UsageError(
      `--kill-grace-ms ${killGraceMs} is too long for --ttl-ms ${ttlMs} (at most ${graceMax}: SIGTERM must come after a renewal had its chance)`,
    );
  }
  const waitMs = positiveInt(ctx.values, "wait-ms", 0) ?? 0;
  const client = ctx.client();
  const lock = await client.lock(
    name,
    { ttlMs, wait: ctx.values["no-wait"] !== true, ...(waitMs > 0 ? { timeoutMs: waitMs } : {}) },
    { signal: ctx.signal },
  );
  const validUntilEpochMs = (): number => Math.floor(Date.now() + (lock.validUntil - performance.now()));
  ctx.out.event(
    "lock-acquired",
    { name, token: lock.token, leaseId: lock.lease.id, validUntilMs: validUntilEpochMs() },
    `holding ${name} with token ${lock.token}`,
  );
  const [command, ...args] = ctx.child;
  const outcome = await superviseChild({
    command: command ?? "",
    args,
    env: {
      ...process.env,
      TENURE_LOCK_NAME: name,
      TENURE_FENCING_TOKEN: String(lock.token),
      // The SDK's conservative validity at the start, in ms since the epoch; renewals extend the
      // lock beyond it while the child runs, and the child is stopped before it lapses.
      TENURE_VALID_UNTIL: String(validUntilEpochMs()),
    },
    validity: { validUntilMs: () => lock.validUntil, lost: lock.signal },
    killGraceMs,
    killMarginMs: KILL_MARGIN_MS,
    clock: () => performance.now(),
    pollMs: POLL_MS,
    interrupted: ctx.signal,
    onEvent: (e, f, t) => ctx.out.event(e, f, t),
  });
  try {
    const released = await lock.release({ timeoutMs: Math.min(ctx.globals.timeoutMs, 5_000) });
    ctx.out.event("lock-released", { name, token: lock.token, released }, `released ${name}`);
  } catch (error) {
    const e = TenureError.from(error);
    ctx.out.event(
      "lock-release-failed",
      { name, code: e.code, message: e.message },
      `could not release ${name} (${e.code}); it lapses with its lease`,
    );
  }
  return outcome.status;
}

const WAIT_FLAGS = {
  "wait-ms": { type: "string", valueName: "MS", description: "give up waiting after MS (0: wait as long as it takes; the default)" },
  "no-wait": { type: "boolean", description: "fail at once (exit 1, LOCK_HELD) when someone holds the lock" },
} as const;

export const LOCK_COMMANDS: readonly CommandSpec[] = [
  {
    path: ["lock", "acquire"],
    summary: "acquire a lock and print its fencing token (held while its lease lives)",
    details: "Without --lease a lease of --ttl-ms is granted for it; tenurectl exits and nothing renews it.",
    positionals: [{ name: "NAME", description: "the lock" }],
    options: {
      lease: { type: "string", valueName: "LEASE_ID", description: "hold the lock with this lease (from lease grant)" },
      "ttl-ms": { type: "string", valueName: "MS", description: `TTL of the lease granted for the lock (default ${DEFAULT_LEASE_TTL_MS})` },
      ...WAIT_FLAGS,
    },
    run: acquire,
  },
  {
    path: ["lock", "release"],
    summary: "release a lock, fenced by its token (exit 1 when that token does not hold it)",
    positionals: [
      { name: "NAME", description: "the lock" },
      { name: "TOKEN", description: "the fencing token it was acquired with" },
    ],
    options: {},
    run: release,
  },
  {
    path: ["lock", "status"],
    summary: "a lock's state, token, holder and waiters",
    positionals: [{ name: "NAME", description: "the lock" }],
    options: {},
    run: status,
  },
  {
    path: ["lock"],
    usage: "tenurectl lock NAME [flags] -- COMMAND [ARGS...]",
    summary: "run COMMAND while holding lock NAME; exit with its status",
    details:
      "Acquires NAME (waiting FIFO), then runs COMMAND with TENURE_FENCING_TOKEN (the lock's token),\n" +
      "TENURE_VALID_UNTIL (ms since the epoch until which the lock is surely held, as of the start) and\n" +
      "TENURE_LOCK_NAME, renewing the lease while it runs. If renewals stop landing, COMMAND's process\n" +
      "group gets SIGTERM when the validity is --kill-grace-ms (+100 ms) from its end, and SIGKILL at the\n" +
      "latest 100 ms before it ends, before the server may grant the lock to anyone else. The lock is\n" +
      "released when COMMAND exits. Exit status: COMMAND's (128 + signal when it was killed); 1 when the\n" +
      "lock was not acquired. COMMAND runs in its own process group, without a controlling terminal.\n" +
      "NAME may not be acquire, release or status.",
    positionals: [{ name: "NAME", description: "the lock" }],
    options: {
      "ttl-ms": { type: "string", valueName: "MS", description: `the lease's TTL (default ${DEFAULT_RUN_TTL_MS}, at least 1000)` },
      "kill-grace-ms": {
        type: "string",
        valueName: "MS",
        description: "from SIGTERM to SIGKILL (default TTL/4, at most 5000; at most TTL/3 - 200)",
      },
      ...WAIT_FLAGS,
    },
    childCommand: true,
    run,
  },
];
