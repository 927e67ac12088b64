// Starting the core in recovery when storage found lost log data (issue 13 point 2; server/core/
// raft.ts "Recovery", server/storage/README.md "Recovery"): the store's finding becomes
// RaftConfig.recovery, and the core's recovery lines (its refusals to vote or campaign, the
// leader forgetting a recovering follower's match, recovery_done) go to the process log, so an
// operator (and the real-process test) can see the member keep out of elections and come back.

import type { RaftConfig } from "../core/config.ts";
import type { Index } from "../core/types.ts";

/** Every core line about recovery contains this (raft.ts logLine calls). */
const RECOVERY_LINE = /recover/;

export function configWithRecovery(
  config: RaftConfig,
  recovery: { readonly untilIndex: Index } | null,
  log: (fields: Record<string, unknown>) => void,
): RaftConfig {
  const inner = config.logger;
  return {
    ...config,
    recovery: recovery === null ? null : { untilIndex: recovery.untilIndex },
    logger: (line) => {
      inner?.(line);
      if (!RECOVERY_LINE.test(line)) return;
      log({ component: "raft", event: line.includes("recovery_done") ? "recovery_done" : "recovery", line });
    },
  };
}
