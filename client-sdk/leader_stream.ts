// A server stream served by the Raft leader (Election.Observe, Lock.Watch), followed across
// failovers: on an error it reconnects (to the NOT_LEADER hint, else the next endpoint, with
// backoff); each message is decoded and keyed, and since a reconnect starts with the current
// value again, a value whose key equals the last one yielded is skipped. Ends (without an error)
// when `signal` aborts, `timeoutMs` passes or the client closes; throws an error no retry can
// mend (a bad request, a missing permission or credential), which would otherwise loop forever.

import { backoffDelayMs, retryDelayMs, type RandomSource } from "./backoff.ts";
import { TenureError } from "./errors.ts";
import { linkSignals, sleep, type CallOptions } from "./signals.ts";
import type { Timers } from "./timers.ts";
import type { ServiceName } from "../proto/tenure_protos.ts";
import type { Message, Transport } from "./transport.ts";

/** Answers that a reconnect gets again: the iteration ends with them. */
const DEFINITIVE: ReadonlySet<string> = new Set(["INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED", "UNIMPLEMENTED"]);

export interface LeaderStreamHost {
  readonly transport: Transport;
  readonly random: RandomSource;
  readonly closed: AbortSignal;
  readonly timers: Timers;
}

export async function* followLeaderStream<T>(
  host: LeaderStreamHost,
  call: { readonly service: ServiceName; readonly method: string; readonly request: object },
  decode: (m: Message) => T,
  key: (value: T) => string,
  opts: CallOptions = {},
): AsyncGenerator<T, void, undefined> {
  const linked = linkSignals([opts.signal, host.closed], opts.timeoutMs, host.timers);
  const t = host.transport;
  let last: string | undefined;
  /** How the last stream ended, for the wait before the next (an ended stream with no error: none). */
  let ended: TenureError | null = null;
  try {
    for (let failures = 0; !linked.signal.aborted; ) {
      const endpoint = t.leader;
      const stream = t.serverStream(endpoint, call.service, call.method, call.request);
      const onAbort = (): void => stream.cancel();
      linked.signal.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const m of stream as AsyncIterable<Message>) {
          failures = 0;
          const value = decode(m);
          const k = key(value);
          if (k === last) continue;
          last = k;
          yield value;
        }
      } catch (error) {
        if (linked.signal.aborted) return;
        const e = TenureError.from(error);
        ended = e;
        if (DEFINITIVE.has(e.code)) throw e;
        if (e.code === "NOT_LEADER" && e.leaderHint && e.leaderHint !== endpoint) {
          t.setLeader(e.leaderHint, endpoint);
          continue;
        }
        // OVERLOADED: the leader is busy, not gone; stay and wait out its hint.
        if (e.code !== "OVERLOADED") t.rotate(endpoint);
      } finally {
        linked.signal.removeEventListener("abort", onAbort);
        stream.cancel();
      }
      const waitMs = ended !== null ? retryDelayMs(ended, failures++, host.random) : backoffDelayMs(failures++, host.random);
      ended = null;
      await sleep(waitMs, linked.signal, host.timers).catch(() => {});
    }
  } finally {
    linked.cleanup();
  }
}
