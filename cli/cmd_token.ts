// `token check NAME TOKEN`: the guard's validateToken (a linearizable read of whether TOKEN is the
// current grant of NAME). Exit 0 when it is, 1 when it is not: for scripts that must not act on a
// stale token. Read the caveat in client-sdk/guard/validate_token.ts: the answer is already old
// when it arrives; a resource should keep the max-token rule (a guard) as well.

import { TenureError } from "../client-sdk/index.ts";
import { validateToken } from "../client-sdk/guard/validate_token.ts";
import { EXIT_FAILED, EXIT_OK, UsageError } from "./exit_codes.ts";
import { keyValues } from "./output.ts";
import type { CommandContext, CommandSpec } from "./spec.ts";

async function check(ctx: CommandContext): Promise<number> {
  const [name = "", raw = ""] = ctx.positionals;
  if (!/^[1-9]\d{0,19}$/.test(raw)) throw new UsageError(`TOKEN must be a positive integer, not "${raw}"`);
  if (ctx.globals.bearerToken !== undefined)
    throw new UsageError("token check authenticates by client certificate only (no --token / --token-file)");
  const r = await validateToken(ctx.globals.endpoints, name, BigInt(raw), {
    security: ctx.globals.security,
    timeoutMs: Math.min(ctx.globals.timeoutMs, 5_000),
    signal: ctx.signal,
  }).catch((error: unknown) => {
    // Its own "no leader answered" is a plain Error: for us that is "unavailable" (exit 3).
    if (error instanceof Error && !("code" in error)) throw new TenureError("UNAVAILABLE", error.message, { cause: error });
    throw error;
  });
  const kind = r.kind.replace(/^GRANT_KIND_/, "").toLowerCase();
  const out = { name, token: raw, current: r.current, currentToken: r.currentToken.toString(), kind };
  ctx.out.result(out, () =>
    keyValues([
      ["name", `${name} (${kind})`],
      ["token", `${raw}: ${r.current ? "current" : "NOT current"}`],
      ["current token", r.currentToken === 0n ? "- (nobody holds it)" : r.currentToken.toString()],
    ]),
  );
  return r.current ? EXIT_OK : EXIT_FAILED;
}

export const TOKEN_COMMANDS: readonly CommandSpec[] = [
  {
    path: ["token", "check"],
    summary: "is TOKEN the current grant of lock or election NAME? (exit 0 yes, 1 no)",
    positionals: [
      { name: "NAME", description: "the lock or election" },
      { name: "TOKEN", description: "the fencing token to check" },
    ],
    options: {},
    run: check,
  },
];
