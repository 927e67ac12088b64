// The simulated storage guard (DESIGN.md §5, Kleppmann's fencing): per resource the highest token
// accepted; a write with a lower token is rejected with STALE_FENCING_TOKEN, an equal one passes.
//
// A write takes writeMs of simulated time (the guarded store's transaction). In the correct guard
// the check, the update of the highest token and the write are ONE atomic step at the end of that
// time (SQLite BEGIN IMMEDIATE serialises them). The test-only bug `guardCheckNotAtomic` checks the
// token when the write arrives and commits it writeMs later without checking again: a higher token
// accepted in between is then overtaken by the lower one (a TOCTOU race).
//
// The guard does not judge itself: every accepted write is reported to the oracle
// (lock_checkers.ts), which keeps its own record of the highest token accepted per resource.

export interface GuardWrite {
  readonly resource: string;
  readonly token: number;
  readonly clientId: string;
  /** Client's write counter, so a duplicate delivery is recognisable in traces. */
  readonly writeNo: number;
}

export type GuardOutcome = { readonly ok: true } | { readonly ok: false; readonly code: "STALE_FENCING_TOKEN"; readonly highest: number };

export interface GuardObserver {
  onGuardAccepted(write: GuardWrite): void;
  onGuardRejected(write: GuardWrite, highest: number): void;
}

export class SimGuard {
  private readonly highest = new Map<string, number>();
  accepted = 0;
  rejected = 0;

  constructor(
    private readonly observer: GuardObserver,
    private readonly checkNotAtomic: boolean,
  ) {}

  /** The write reached the guard. Returns whether it may proceed to commit() (the bug's early check). */
  arrive(write: GuardWrite): GuardOutcome {
    if (!this.checkNotAtomic) return { ok: true }; // the correct guard checks at commit only
    return this.check(write);
  }

  /** The write's transaction ends now: check (unless the bug checked earlier), update, write. */
  commit(write: GuardWrite, checkedOnArrival: boolean): GuardOutcome {
    const outcome = checkedOnArrival ? { ok: true as const } : this.check(write);
    if (!outcome.ok) return outcome;
    this.highest.set(write.resource, Math.max(this.highest.get(write.resource) ?? 0, write.token));
    if (checkedOnArrival) this.highest.set(write.resource, write.token); // the bug overwrites with its own
    this.accepted++;
    this.observer.onGuardAccepted(write);
    return outcome;
  }

  highestOf(resource: string): number {
    return this.highest.get(resource) ?? 0;
  }

  private check(write: GuardWrite): GuardOutcome {
    const highest = this.highest.get(write.resource) ?? 0;
    if (write.token >= highest) return { ok: true };
    this.rejected++;
    this.observer.onGuardRejected(write, highest);
    return { ok: false, code: "STALE_FENCING_TOKEN", highest };
  }
}
