// The command table, in the order `tenurectl --help` lists it.

import { CLUSTER_COMMANDS } from "./cmd_cluster.ts";
import { ELECTION_COMMANDS } from "./cmd_elect.ts";
import { LEASE_COMMANDS } from "./cmd_lease.ts";
import { LOCK_COMMANDS } from "./cmd_lock.ts";
import { SNAPSHOT_COMMANDS } from "./cmd_snapshot.ts";
import { TOKEN_COMMANDS } from "./cmd_token.ts";
import type { CommandSpec } from "./spec.ts";

export const COMMANDS: readonly CommandSpec[] = [
  ...CLUSTER_COMMANDS,
  ...LEASE_COMMANDS,
  ...LOCK_COMMANDS,
  ...ELECTION_COMMANDS,
  ...TOKEN_COMMANDS,
  ...SNAPSHOT_COMMANDS,
];
