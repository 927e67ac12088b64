// Elections: `elect NAME VALUE` campaigns and leads until interrupted (then resigns), like
// `etcdctl elect`; `observe NAME` prints every leader change until interrupted.

import { EXIT_FAILED, EXIT_OK } from "./exit_codes.ts";
import { positiveInt } from "./globals.ts";
import type { CommandContext, CommandSpec } from "./spec.ts";

const DEFAULT_ELECT_TTL_MS = 10_000;

async function elect(ctx: CommandContext): Promise<number> {
  const [name = "", value = ""] = ctx.positionals;
  const ttlMs = positiveInt(ctx.values, "ttl-ms") ?? DEFAULT_ELECT_TTL_MS;
  const waitMs = positiveInt(ctx.values, "wait-ms", 0) ?? 0;
  const leadership = await ctx
    .client()
    .election(name)
    .campaign(value, { ttlMs, ...(waitMs > 0 ? { timeoutMs: waitMs } : {}) }, { signal: ctx.signal });
  ctx.out.result(
    { name, value, token: String(leadership.token), leaseId: String(leadership.lease.id) },
    () => `leading ${name} with token ${leadership.token} (Ctrl-C resigns)\n`,
  );
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted || leadership.signal.aborted) return resolve();
    ctx.signal.addEventListener("abort", () => resolve(), { once: true });
    leadership.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  const lost = !ctx.signal.aborted;
  if (lost) ctx.out.event("leadership-lost", { name, token: leadership.token }, `leadership of ${name} may be lost`);
  await leadership.resign({ timeoutMs: 5_000 }).catch(() => {});
  return lost ? EXIT_FAILED : EXIT_OK;
}

async function observe(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0] ?? "";
  for await (const leader of ctx.client().election(name).observe({ signal: ctx.signal })) {
    ctx.out.result(leader === null ? { name, leader: null } : { name, leader: { value: leader.value, token: String(leader.token) } }, () =>
      leader === null ? `${name}: no leader\n` : `${name}: ${leader.value} (token ${leader.token})\n`,
    );
  }
  return EXIT_OK;
}

export const ELECTION_COMMANDS: readonly CommandSpec[] = [
  {
    path: ["elect"],
    summary: "campaign for NAME with VALUE and lead until interrupted (then resign)",
    details: "Exit 0 after resigning on SIGINT/SIGTERM, 1 when leadership was lost (its lease could not be renewed).",
    positionals: [
      { name: "NAME", description: "the election" },
      { name: "VALUE", description: "what the leader proclaims (e.g. its address)" },
    ],
    options: {
      "ttl-ms": { type: "string", valueName: "MS", description: `the campaign lease's TTL (default ${DEFAULT_ELECT_TTL_MS})` },
      "wait-ms": { type: "string", valueName: "MS", description: "give up the campaign after MS (0: no limit; the default)" },
    },
    run: elect,
  },
  {
    path: ["observe"],
    summary: "print NAME's leader and every change, until interrupted",
    positionals: [{ name: "NAME", description: "the election" }],
    options: {},
    run: observe,
  },
];
