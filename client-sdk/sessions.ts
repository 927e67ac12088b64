// Exactly-once sessions on the client side (errors.proto). The server keeps the LAST result per
// client_id, so a client_id may carry only ONE mutating request at a time, and its seq must grow:
// starting at 1, +1 per request, +2 after a blocking Acquire/Campaign (the server may use seq + 1
// to withdraw the wait). A pool hands each concurrent caller its own session, so concurrent calls
// never share a client_id; a session is returned to the pool when its call has a definitive end.

/** Per client_id sequence numbers; respects the seq + 1 reservation of blocking calls. */
export class SeqAllocator {
  private nextSeq = 1;

  /** The seq for the next request; `blocking` also reserves seq + 1 for the server's WaitCancel. */
  next(options: { readonly blocking: boolean } = { blocking: false }): number {
    const seq = this.nextSeq;
    this.nextSeq += options.blocking ? 2 : 1;
    if (!Number.isSafeInteger(this.nextSeq)) throw new Error("seq space exhausted; use a new client id");
    return seq;
  }

  /** The seq the next request will get (for tests and diagnostics). */
  peek(): number {
    return this.nextSeq;
  }
}

export interface Session {
  readonly clientId: string;
  readonly seqs: SeqAllocator;
}

export class SessionPool {
  private readonly free: Session[] = [];
  private created = 0;

  constructor(private readonly baseClientId: string) {}

  /** A session no other call is using (a new client_id when none is free). */
  take(): Session {
    return this.free.pop() ?? this.fresh();
  }

  /** A brand-new client_id (after SESSION_EXPIRED, or for a stream of its own). */
  fresh(): Session {
    this.created += 1;
    return { clientId: `${this.baseClientId}.${this.created}`, seqs: new SeqAllocator() };
  }

  /**
   * Returns a session whose last request ended definitively. A session whose request may still be
   * in flight on the server (the caller gave up on it) must NOT come back: drop it instead.
   */
  give(session: Session): void {
    this.free.push(session);
  }
}
