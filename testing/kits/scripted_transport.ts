// The SDK's retry engine (client-sdk/rpc.ts) against a scripted transport: three endpoints
// "a", "b", "c" with a movable leader, each unary call answered by the next scripted step (a
// message, or a TenureError thrown), and every call recorded.

import { performance } from "node:perf_hooks";
import type { TenureError } from "../../client-sdk/errors.ts";
import { Rpc, type RpcOptions } from "../../client-sdk/rpc.ts";
import { SessionPool } from "../../client-sdk/sessions.ts";
import { SYSTEM_TIMERS } from "../../client-sdk/timers.ts";
import type { Message, Transport } from "../../client-sdk/transport.ts";

export type ScriptedStep = Message | TenureError;

export interface ScriptedCall {
  readonly endpoint: string;
  readonly request: Message;
}

/** `whenEmpty` answers once the script has run out. */
export function scriptedTransport(
  steps: ScriptedStep[],
  whenEmpty: () => ScriptedStep,
  endpoints: readonly string[] = ["a", "b", "c"],
): { transport: Transport; calls: ScriptedCall[]; endpointsCalled: string[] } {
  const calls: ScriptedCall[] = [];
  const endpointsCalled: string[] = [];
  let leader = endpoints[0] ?? "a";
  const transport = {
    endpoints,
    get leader() {
      return leader;
    },
    setLeader: (x: string) => (leader = x),
    rotate: (from: string) => {
      if (leader === from) leader = endpoints[(endpoints.indexOf(from) + 1) % endpoints.length] ?? leader;
    },
    unary: async (endpoint: string, _service: string, _method: string, request: Message) => {
      calls.push({ endpoint, request });
      endpointsCalled.push(endpoint);
      const step = steps.shift() ?? whenEmpty();
      if (step instanceof Error) throw step;
      return step;
    },
  };
  return { transport: transport as unknown as Transport, calls, endpointsCalled };
}

/** An Rpc with short, fixed retry timings (no jitter), for tests. */
export function scriptedRpc(transport: Transport, overrides: Partial<RpcOptions> = {}): Rpc {
  return new Rpc({
    transport,
    pool: new SessionPool("t"),
    backoff: { baseMs: 1, capMs: 5 },
    random: () => 0.5,
    clock: () => performance.now(),
    timers: SYSTEM_TIMERS,
    attemptTimeoutMs: 100,
    defaultTimeoutMs: 1000,
    closed: new AbortController().signal,
    ...overrides,
  });
}
