// Exactly-once sessions on the client side (errors.proto). The server keeps the LAST result per
// client_id, so a client_id may carry only ONE mutating request at a time, and its seq must grow:
// starting at 1, +1 per request, +2 after a blocking Acquire/Campaign (the server may use seq + 1
// to withdraw the wait). A pool hands each concurrent caller its own session, so concurrent calls
// never share a client_id; a session is returned to the pool when its call has a definitive end.
//
// The server takes seqs up to SEQ_MAX (2^53 - 2: every seq leaves a successor), and a blocking
// call's up to SEQ_MAX - 1 (its seq + 1 is reserved). A session whose next seq would pass that
// moves to a new client_id and starts again at 1, instead of sending a seq the server refuses:
// its last request has ended (a session carries one request at a time, and a retry reuses its
// seq without asking for another), so nothing pending is left on the old id.

/** The largest seq the server accepts (server/api/validate.ts SEQ_MAX). */
export const SEQ_MAX = Number.MAX_SAFE_INTEGER - 1;

/** Per client_id sequence numbers; respects the seq + 1 reservation of blocking calls. */
export class SeqAllocator {
  /**
   * `onExhausted` moves the session to a new client_id when no seq is left; `firstSeq` lets tests
   * start near the top.
   */
  constructor(
    private readonly onExhausted: () => void = () => {
      throw new Error("seq space exhausted; use a new client id");
    },
    private nextSeq = 1,
  ) {}

  /** The seq for the next request; `blocking` also reserves seq + 1 for the server's WaitCancel. */
  next(options: { readonly blocking: boolean } = { blocking: false }): number {
    const seqMax = SEQ_MAX - (options.blocking ? 1 : 0);
    if (this.nextSeq > seqMax) {
      this.onExhausted();
      this.nextSeq = 1;
    }
    const seq = this.nextSeq;
    this.nextSeq += options.blocking ? 2 : 1;
    return seq;
  }

  /** The seq the next request will get (for tests and diagnostics). */
  peek(): number {
    return this.nextSeq;
  }
}

/** One client_id and its seqs; the client_id changes only when the seqs run out (see above). */
export class Session {
  private current: string;
  readonly seqs: SeqAllocator;
  /**
   * Leases this session granted that the client still holds. The server counts a client_id's
   * leases against leasesPerClientMax (1,000 by default), so a client holding more grants them
   * on several sessions (TenureClient.grantLease).
   */
  grantedLeases = 0;
  /** Grants this session may hold: unknown (Infinity) until the server refused one for the per-client limit. */
  leaseGrantCap = Number.POSITIVE_INFINITY;

  constructor(newClientId: () => string, firstSeq = 1) {
    this.current = newClientId();
    this.seqs = new SeqAllocator(() => {
      this.current = newClientId();
    }, firstSeq);
  }

  get clientId(): string {
    return this.current;
  }
}

export class SessionPool {
  private readonly free: Session[] = [];
  private created = 0;

  constructor(private readonly baseClientId: string) {}

  /**
   * A session no other call is using (a new client_id when none is free); with `eligible`, the
   * most recently returned one it accepts (the pool holds one session per concurrent call, a few).
   */
  take(eligible?: (session: Session) => boolean): Session {
    if (eligible === undefined) return this.free.pop() ?? this.fresh();
    for (let i = this.free.length - 1; i >= 0; i--) {
      const session = this.free[i] as Session;
      if (!eligible(session)) continue;
      this.free.splice(i, 1);
      return session;
    }
    return this.fresh();
  }

  /** A brand-new client_id (after SESSION_EXPIRED, or for a stream of its own). */
  fresh(firstSeq = 1): Session {
    return new Session(() => this.newClientId(), firstSeq);
  }

  /**
   * Returns a session whose last request ended definitively. A session whose request may still be
   * in flight on the server (the caller gave up on it) must NOT come back: drop it instead.
   */
  give(session: Session): void {
    this.free.push(session);
  }

  private newClientId(): string {
    this.created += 1;
    return `${this.baseClientId}.${this.created}`;
  }
}
