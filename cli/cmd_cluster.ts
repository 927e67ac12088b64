// Cluster commands: status (every endpoint's own view, side by side), members, membership changes,
// leadership transfer, freeze / thaw. Membership calls, transfer-leader, freeze and thaw are
// admin-only on the server.

import { TenureError } from "../client-sdk/index.ts";
import { EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, UsageError } from "./exit_codes.ts";
import { keyValues, table } from "./output.ts";
import type { CommandContext, CommandSpec } from "./spec.ts";

type Msg = Record<string, unknown>;

export interface MemberView {
  readonly endpoint: string;
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leaderId: string;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** The leader's commit index minus this member's applied index (null: no leader answered). */
  readonly lag: number | null;
  readonly witness: boolean;
  readonly security: "tls" | "insecure";
  readonly callerIdentity: string;
  readonly callerAdmin: boolean;
  /** Catching up after its disk lost log data: no vote, not counted in commits. */
  readonly recovering: boolean;
}

/** The freeze (tenurectl freeze) as the leader reports it (or, with no leader, any member). */
export interface FrozenView {
  readonly frozen: boolean;
  readonly reason: string;
  readonly by: string;
  /** Leader time (ms) of the Freeze entry. */
  readonly sinceMs: number;
  /** The member whose Status said so. */
  readonly reportedBy: string;
}

export interface Unreachable {
  readonly endpoint: string;
  readonly error: string;
  readonly code: string;
}

/** Folds the endpoints' Status answers into one view: the rows, the leader they agree on. */
export function clusterView(answers: readonly { endpoint: string; status?: Msg; error?: TenureError }[]): {
  members: MemberView[];
  unreachable: Unreachable[];
  leader: string | null;
  term: number;
  agreed: boolean;
  frozen: FrozenView | null;
} {
  const ok = answers.filter((a): a is { endpoint: string; status: Msg } => a.status !== undefined);
  const leaderRow = ok.filter((a) => a.status["role"] === "leader").sort((x, y) => Number(y.status["term"]) - Number(x.status["term"]))[0];
  const leaderCommit = leaderRow ? Number(leaderRow.status["commitIndex"] ?? 0) : null;
  const members = ok.map(({ endpoint, status: s }): MemberView => {
    const conf = (s["confState"] ?? {}) as Msg;
    const witnesses = (conf["witnesses"] ?? []) as unknown[];
    const applied = Number(s["appliedIndex"] ?? 0);
    return {
      endpoint,
      id: String(s["nodeId"] ?? ""),
      role: String(s["role"] ?? ""),
      term: Number(s["term"] ?? 0),
      leaderId: String(s["leaderId"] ?? ""),
      commitIndex: Number(s["commitIndex"] ?? 0),
      appliedIndex: applied,
      lastIndex: Number(s["lastIndex"] ?? 0),
      lag: leaderCommit === null ? null : Math.max(0, leaderCommit - applied),
      witness: witnesses.includes(s["nodeId"]),
      security: s["insecure"] === true ? "insecure" : "tls",
      callerIdentity: String(s["callerIdentity"] ?? ""),
      callerAdmin: s["callerAdmin"] === true,
      recovering: s["recovering"] === true,
    };
  });
  const unreachable = answers
    .filter((a) => a.status === undefined)
    .map((a) => ({ endpoint: a.endpoint, error: a.error?.message ?? "no answer", code: a.error?.code ?? "UNKNOWN" }));
  const leaders = new Set(members.map((m) => m.leaderId));
  const leader = leaderRow ? String(leaderRow.status["nodeId"]) : null;
  const frozenRow = leaderRow ?? ok.find((a) => a.status["frozen"] === true) ?? ok[0];
  const frozen: FrozenView | null =
    frozenRow === undefined
      ? null
      : {
          frozen: frozenRow.status["frozen"] === true,
          reason: String(frozenRow.status["frozenReason"] ?? ""),
          by: String(frozenRow.status["frozenBy"] ?? ""),
          sinceMs: Number(frozenRow.status["frozenSinceMs"] ?? 0),
          reportedBy: String(frozenRow.status["nodeId"] ?? ""),
        };
  return {
    frozen,
    members,
    unreachable,
    leader,
    term: Math.max(0, ...members.map((m) => m.term)),
    agreed: leader !== null && leaders.size === 1 && leaders.has(leader),
  };
}

async function status(ctx: CommandContext): Promise<number> {
  const client = ctx.client();
  const answers = await Promise.all(
    ctx.globals.endpoints.map(async (endpoint) => {
      try {
        const status = await client.transport.unary(endpoint, "Cluster", "Status", {}, ctx.globals.timeoutMs, ctx.signal);
        return { endpoint, status };
      } catch (error) {
        return { endpoint, error: TenureError.from(error) };
      }
    }),
  );
  const view = clusterView(answers);
  ctx.out.result(view, () => {
    const rows = view.members.map((m) => [
      m.id,
      m.endpoint,
      m.recovering ? `${m.role} (recovering)` : m.role,
      String(m.term),
      String(m.commitIndex),
      String(m.appliedIndex),
      m.lag === null ? "?" : String(m.lag),
      m.id === view.leader ? "*" : "",
      m.witness ? "witness" : "",
      m.security === "insecure" ? "INSECURE" : "mTLS",
    ]);
    for (const u of view.unreachable) rows.push(["?", u.endpoint, `unreachable (${u.code})`, "", "", "", "", "", "", ""]);
    const head =
      view.leader === null
        ? "no leader among the members that answered"
        : `leader ${view.leader}, term ${view.term}${view.agreed ? "" : " (the members do not all name it yet)"}`;
    const me = view.members[0];
    const caller = me ? `; you are ${me.callerIdentity || "(open mode)"}${me.callerAdmin ? " (admin)" : ""}` : "";
    const notes = view.unreachable.map((u) => `  ${u.endpoint}: ${u.error}`).join("\n");
    const frozen = view.frozen?.frozen === true ? `${frozenLine(view.frozen)}\n` : "";
    return `${frozen}${head}; ${view.members.length}/${answers.length} endpoints answered${caller}\n${table(
      ["MEMBER", "ENDPOINT", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "LEADER", "WITNESS", "TRANSPORT"],
      rows,
    )}${notes ? `${notes}\n` : ""}`;
  });
  if (view.members.length === 0) return EXIT_UNAVAILABLE;
  return view.unreachable.length > 0 || !view.agreed ? EXIT_FAILED : EXIT_OK;
}

/** The first line of `tenurectl status` while frozen. */
export function frozenLine(f: FrozenView): string {
  const by = f.by === "" ? "an admin (open mode)" : f.by;
  return `FROZEN by ${by} at leader time ${f.sinceMs} ms: ${JSON.stringify(f.reason)} (no new grants; renewals, releases and reads are served; tenurectl thaw resumes)`;
}

async function freeze(ctx: CommandContext): Promise<number> {
  const reason = ctx.values["reason"];
  if (typeof reason !== "string" || reason === "") throw new UsageError("freeze needs --reason TEXT (why the cluster is frozen)");
  const res = await ctx.client().rpc.read("Cluster", "Freeze", { reason }, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
  const view = {
    frozen: true,
    alreadyFrozen: res["alreadyFrozen"] === true,
    reason: String(res["frozenReason"] ?? ""),
    by: String(res["frozenBy"] ?? ""),
    sinceMs: Number(res["frozenSinceMs"] ?? 0),
  };
  ctx.out.result(view, () => {
    const what = view.alreadyFrozen ? "already frozen (nothing changed)" : "frozen";
    const by = view.by === "" ? "an admin (open mode)" : view.by;
    return `${what}: by ${by} at leader time ${view.sinceMs} ms: ${JSON.stringify(view.reason)}\nno new lease, lock or leadership is granted; renewals, releases and reads are served; tenurectl thaw resumes\n`;
  });
  return EXIT_OK;
}

async function thaw(ctx: CommandContext): Promise<number> {
  const res = await ctx.client().rpc.read("Cluster", "Thaw", {}, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
  const view = { frozen: false, alreadyThawed: res["alreadyThawed"] === true, granted: Number(res["granted"] ?? 0) };
  ctx.out.result(view, () =>
    view.alreadyThawed
      ? "not frozen (nothing changed)\n"
      : `thawed: new grants resume; ${view.granted} lock(s) or election(s) freed while frozen went to their first waiter\n`,
  );
  return EXIT_OK;
}

function roleName(r: unknown): string {
  return r === "MEMBER_ROLE_VOTER" ? "voter" : r === "MEMBER_ROLE_LEARNER" ? "learner" : String(r);
}

async function members(ctx: CommandContext): Promise<number> {
  const res = await ctx.client().rpc.read("Cluster", "Members", {}, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
  const list = ((res["members"] ?? []) as Msg[]).map((m) => ({
    id: String(m["id"] ?? ""),
    address: String(m["address"] ?? ""),
    role: roleName(m["role"]),
    witness: m["witness"] === true,
    leader: m["isLeader"] === true,
  }));
  ctx.out.result({ members: list }, () =>
    table(
      ["MEMBER", "ADDRESS", "ROLE", "WITNESS", "LEADER"],
      list.map((m) => [m.id, m.address || "-", m.role, m.witness ? "witness" : "", m.leader ? "*" : ""]),
    ),
  );
  return EXIT_OK;
}

function confText(conf: Msg): string {
  const list = (k: string): string => ((conf[k] ?? []) as unknown[]).map(String).join(",") || "-";
  return keyValues([
    ["voters", list("voters")],
    ["voters (outgoing)", list("votersOutgoing")],
    ["learners", list("learners")],
    ["witnesses", list("witnesses")],
  ]);
}

/** Membership calls are not exactly-once on the server (a retry after a lost reply is refused,
 *  its message showing the configuration), so they go through the plain retry path. */
async function membership(ctx: CommandContext, method: string, request: object): Promise<number> {
  const res = await ctx.client().rpc.read("Cluster", method, request, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
  const conf = (res["confState"] ?? {}) as Msg;
  ctx.out.result({ alreadyDone: res["alreadyDone"] === true, configuration: conf }, () => confText(conf));
  return EXIT_OK;
}

export const CLUSTER_COMMANDS: readonly CommandSpec[] = [
  {
    path: ["status"],
    summary: "every member's role, term, commit and applied index, lag to the leader, at a glance",
    details:
      "Asks Cluster.Status of every endpoint (each member's own view, not a linearizable read). LAG is the\n" +
      "leader's commit index minus the member's applied index. While the cluster is frozen (tenurectl freeze)\n" +
      "the first line says FROZEN, by whom, since when and why (json: frozen). Exit 0 when every endpoint\n" +
      "answered and all name one leader, 1 when some did not answer or there is no agreed leader, 3 when none\n" +
      "answered.",
    positionals: [],
    options: {},
    run: status,
  },
  { path: ["members"], summary: "the configuration's members, their addresses and roles", positionals: [], options: {}, run: members },
  {
    path: ["member", "add"],
    summary: "add a member (admin), as a voter unless --learner",
    positionals: [{ name: "ID", description: "the new member's node id" }],
    options: {
      learner: { type: "boolean", description: "add as a non-voting learner (to catch up before promotion)" },
      witness: { type: "boolean", description: "the member is a witness (keeps the log, never applies or serves)" },
    },
    run: (ctx) =>
      membership(ctx, "AddMember", {
        nodeId: ctx.positionals[0],
        learner: ctx.values["learner"] === true,
        witness: ctx.values["witness"] === true,
      }),
  },
  {
    path: ["member", "remove"],
    summary: "remove a member (admin)",
    positionals: [{ name: "ID", description: "the member's node id" }],
    options: {},
    run: (ctx) => membership(ctx, "RemoveMember", { nodeId: ctx.positionals[0] }),
  },
  {
    path: ["member", "replace"],
    summary: "add NEW as a voter and remove OLD in one joint step (admin; site replacement)",
    positionals: [
      { name: "OLD", description: "the voter to remove" },
      { name: "NEW", description: "the member to add as a voter" },
    ],
    options: { witness: { type: "boolean", description: "the new member is a witness" } },
    run: (ctx) =>
      membership(ctx, "ReplaceMember", {
        oldNodeId: ctx.positionals[0],
        newNodeId: ctx.positionals[1],
        witness: ctx.values["witness"] === true,
      }),
  },
  {
    path: ["freeze"],
    summary: "stop every new lease, lock and leadership grant, cluster-wide (admin; incidents)",
    details:
      "A replicated switch (it survives leader changes and restarts). While frozen, lease grant, lock acquire\n" +
      "and campaign fail with FROZEN (exit 1); renewals (keepalive), lock release, lease revoke, resign,\n" +
      "proclaim and every read are served, so holders keep what they hold. A lock or election released or\n" +
      "expired while frozen stays free with its waiters queued (blocking acquires keep waiting); thaw hands\n" +
      "it to the first waiter with a new, higher token. Freezing a frozen cluster changes nothing (the first\n" +
      "reason stays). Shown by tenurectl status and the tenure_frozen metric.",
    positionals: [],
    options: {
      reason: { type: "string", valueName: "TEXT", description: "why (required, 1..256 bytes): shown in status and every FROZEN error" },
    },
    run: freeze,
  },
  {
    path: ["thaw"],
    summary: "end a freeze: new grants resume, waiters of names freed meanwhile are granted (admin)",
    positionals: [],
    options: {},
    run: thaw,
  },
  {
    path: ["transfer-leader"],
    summary: "ask the leader to hand leadership to member ID (admin)",
    positionals: [{ name: "ID", description: "the voter to lead next" }],
    options: {},
    run: async (ctx) => {
      await ctx
        .client()
        .rpc.read("Cluster", "TransferLeader", { toNodeId: ctx.positionals[0] }, { signal: ctx.signal, timeoutMs: ctx.globals.timeoutMs });
      ctx.out.result({ transferStarted: true, to: ctx.positionals[0] }, () => `leadership transfer to ${ctx.positionals[0]} started\n`);
      return EXIT_OK;
    },
  },
];
