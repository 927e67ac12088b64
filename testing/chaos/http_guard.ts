// The chaos workload against a user's own guarded store over HTTP (the protocol of
// client-sdk/guard/http_middleware.ts, as examples/guarded_store.ts serves it):
//   PUT <url>/kv/<key>  body = value, header tenure-fencing-token  -> 200 | 409 stale | 400
//   GET <url>/kv/<key>                                             -> 200 {value} | 404
// Every write goes to a key of its own, so the store can be checked afterwards against the
// history: an accepted write's value is there, a rejected one's key is absent.
// One guard compares the tokens of ONE lock, so this target takes exactly one lock name.

import type { GuardTarget, WriteResult } from "./workload.ts";

const TOKEN_HEADER = "tenure-fencing-token";
const REQUEST_TIMEOUT_MS = 5000;

export class HttpGuardTarget implements GuardTarget {
  private readonly written: { key: string; value: string; ok: boolean | null }[] = [];
  private n = 0;

  constructor(
    private readonly url: string,
    private readonly keyPrefix: string,
  ) {}

  async write(name: string, token: number, client: number): Promise<WriteResult> {
    const key = `${this.keyPrefix}-${++this.n}`;
    const value = `${name}:${token}:${client}`;
    const entry: { key: string; value: string; ok: boolean | null } = { key, value, ok: null };
    if (this.written.length < 1_000_000) this.written.push(entry);
    try {
      const res = await fetch(`${this.url}/kv/${encodeURIComponent(key)}`, {
        method: "PUT",
        headers: { [TOKEN_HEADER]: String(token), "content-type": "text/plain" },
        body: value,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await res.text();
      if (res.status === 200) {
        entry.ok = true;
        return { ok: true };
      }
      if (res.status === 409) {
        entry.ok = false;
        return { ok: false, error: "STALE_FENCING_TOKEN" };
      }
      // Any other answer: we do not know what the store did (entry.ok stays null).
      return { ok: false, error: `HTTP_${res.status} ${text.slice(0, 200)}`, ambiguous: true };
    } catch (e) {
      return { ok: false, error: `HTTP_ERROR ${e instanceof Error ? e.message : String(e)}`, ambiguous: true };
    }
  }

  /** Reads every key back: accepted writes must be there with their value, rejected ones absent. */
  async checkStore(): Promise<string[]> {
    const out: string[] = [];
    for (const w of this.written) {
      if (w.ok === null) continue;
      const res = await fetch(`${this.url}/kv/${encodeURIComponent(w.key)}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = res.status === 200 ? ((await res.json()) as { value?: string }) : (await res.text(), null);
      if (w.ok && body?.value !== w.value)
        out.push(
          `guard store: accepted write ${w.key}=${w.value} reads back as ${body ? JSON.stringify(body.value) : `HTTP ${res.status}`}`,
        );
      if (!w.ok && body !== null) out.push(`guard store: rejected write ${w.key}=${w.value} is in the store`);
    }
    return out;
  }

  close(): void {}
}
