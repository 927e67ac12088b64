// The history format the checkers read (README.md in this directory). A history is what real
// clients observed: one record per operation with its invocation and completion times in one
// clock (the recorder's), its input and its output. Pure data, no I/O.
//
// Outcomes:
//   ok         output is the success value
//   failed     output is { error, ambiguous: false }: the operation definitely had no effect
//   ambiguous  output is { error, ambiguous: true } (timeout, OUTCOME_UNKNOWN) or the call never
//              returned (completeMs === null): it may or may not have taken effect, at any point
//              after its invocation (Knossos / Porcupine: it completes at +infinity, possibly).

export interface OpFailure {
  readonly error: string;
  readonly ambiguous: boolean;
}

interface OpBase {
  readonly id: string | number;
  readonly client: string;
  readonly invokeMs: number;
  /** null: the call never returned (treated as ambiguous). */
  readonly completeMs: number | null;
}

export interface AcquireOp extends OpBase {
  readonly kind: "acquire";
  readonly input: { readonly name: string };
  readonly output: { readonly token: number } | OpFailure | null;
}
export interface ReleaseOp extends OpBase {
  readonly kind: "release";
  readonly input: { readonly name: string; readonly token: number };
  readonly output: { readonly released: boolean } | OpFailure | null;
}
export interface ValidateOp extends OpBase {
  readonly kind: "validate";
  readonly input: { readonly name: string; readonly token: number };
  readonly output: { readonly current: boolean } | OpFailure | null;
}
export interface ReadHolderOp extends OpBase {
  readonly kind: "read-holder";
  readonly input: { readonly name: string };
  readonly output: { readonly token: number | null } | OpFailure | null;
}
export interface GuardWriteOp extends OpBase {
  readonly kind: "guard-write";
  readonly input: { readonly resource: string; readonly token: number; readonly value?: string };
  readonly output: { readonly result: "accepted" | "stale" } | OpFailure | null;
}

export type Operation = AcquireOp | ReleaseOp | ValidateOp | ReadHolderOp | GuardWriteOp;
export type LockOp = AcquireOp | ReleaseOp | ValidateOp | ReadHolderOp;
export type History = readonly Operation[];
export type Outcome = "ok" | "failed" | "ambiguous";

export function isFailure(output: unknown): output is OpFailure {
  return typeof output === "object" && output !== null && "error" in output;
}

export function outcome(op: Operation): Outcome {
  if (op.completeMs === null || op.output === null) return "ambiguous";
  if (isFailure(op.output)) return op.output.ambiguous ? "ambiguous" : "failed";
  return "ok";
}

/** The success output of an ok operation, or undefined. */
export function okOutput<O extends Operation>(op: O): Exclude<O["output"], OpFailure | null> | undefined {
  if (outcome(op) !== "ok") return undefined;
  return op.output as Exclude<O["output"], OpFailure | null>;
}

/** The completion time used for real-time order: +Infinity for ambiguous operations. */
export function returnTime(op: Operation): number {
  return outcome(op) === "ambiguous" || op.completeMs === null ? Infinity : op.completeMs;
}

/** a happens before b in real time: a returned before b was invoked. */
export function precedes(a: Operation, b: Operation): boolean {
  return returnTime(a) < b.invokeMs;
}

export function isLockOp(op: Operation): op is LockOp {
  return op.kind !== "guard-write";
}

/** P-compositionality: locks and guarded resources are independent objects. */
export interface Partitions {
  readonly locks: ReadonlyMap<string, readonly LockOp[]>;
  readonly resources: ReadonlyMap<string, readonly GuardWriteOp[]>;
}

export function partition(history: History): Partitions {
  const locks = new Map<string, LockOp[]>();
  const resources = new Map<string, GuardWriteOp[]>();
  for (const op of history) {
    if (op.kind === "guard-write") {
      const list = resources.get(op.input.resource) ?? [];
      list.push(op);
      resources.set(op.input.resource, list);
    } else {
      const list = locks.get(op.input.name) ?? [];
      list.push(op);
      locks.set(op.input.name, list);
    }
  }
  return { locks, resources };
}

export function describeOp(op: Operation): string {
  const args =
    op.kind === "acquire" || op.kind === "read-holder"
      ? op.input.name
      : op.kind === "guard-write"
        ? `${op.input.resource}, ${op.input.token}`
        : `${op.input.name}, ${op.input.token}`;
  let out: string;
  const o = outcome(op);
  if (o === "ok") out = JSON.stringify(op.output);
  else if (o === "failed") out = `failed(${(op.output as OpFailure).error})`;
  else out = op.completeMs === null ? "never returned" : `ambiguous(${(op.output as OpFailure).error})`;
  const done = op.completeMs === null ? "∞" : String(op.completeMs);
  return `op ${String(op.id)} [${op.client}] ${op.kind}(${args}) -> ${out} @${op.invokeMs}..${done}`;
}
