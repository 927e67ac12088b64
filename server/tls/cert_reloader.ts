// Certificate rotation without a restart: the three TLS files are polled (fs.watchFile stats the
// path, so a rotation by rename, by a symlink swap as Kubernetes does for secrets, or in place is
// seen alike), and reload() re-reads them on demand (tenured and tenure-witness call it on SIGHUP).
// A change is loaded only when all three files read as a consistent, valid set (tls_material.ts);
// otherwise the last good material stays in force and the failure is logged once per change, so
// an operator who copies the certificate before the key sees one error line and then, when the
// key lands, the reload. Subscribers (the server and channel credentials) get each new material;
// connections already open keep the certificate they were made with.

import { statSync, unwatchFile, watchFile } from "node:fs";
import { loadTlsMaterial, type TlsFiles, type TlsMaterial } from "./tls_material.ts";

export const TLS_RELOAD_INTERVAL_MS_DEFAULT = 1_000;

export interface CertificateReloaderOptions {
  readonly files: TlsFiles;
  /** How often the files are stat'ed. Default TLS_RELOAD_INTERVAL_MS_DEFAULT. */
  readonly reloadIntervalMs?: number;
  readonly log: (fields: Record<string, unknown>) => void;
}

export type ReloadOutcome = "reloaded" | "unchanged" | "failed";

export class TlsLoadError extends Error {
  override readonly name = "TlsLoadError";
}

export class CertificateReloader {
  private current: TlsMaterial;
  /** Stat signature of the files last tried (loaded or not): a failure is retried on change. */
  private triedSignature: string;
  private readonly subscribers = new Set<(m: TlsMaterial) => void>();
  private readonly intervalMs: number;
  private watching = false;
  private reloadsTotal = 0;
  private reloadFailuresTotal = 0;

  /** Loads the files once; throws TlsLoadError (a config error: nothing was started) if bad. */
  constructor(private readonly options: CertificateReloaderOptions) {
    this.intervalMs = options.reloadIntervalMs ?? TLS_RELOAD_INTERVAL_MS_DEFAULT;
    if (!Number.isSafeInteger(this.intervalMs) || this.intervalMs < 10) {
      throw new Error(`reloadIntervalMs must be an integer >= 10, got ${this.intervalMs}`);
    }
    this.triedSignature = this.signature();
    const first = loadTlsMaterial(options.files);
    if (!first.ok) throw new TlsLoadError(`TLS: ${first.reason}`);
    this.current = first.material;
  }

  material(): TlsMaterial {
    return this.current;
  }

  counts(): { readonly reloadsTotal: number; readonly reloadFailuresTotal: number } {
    return { reloadsTotal: this.reloadsTotal, reloadFailuresTotal: this.reloadFailuresTotal };
  }

  /** Called with every newly loaded material (not with the first). Returns the unsubscribe. */
  subscribe(onMaterial: (m: TlsMaterial) => void): () => void {
    this.subscribers.add(onMaterial);
    return () => this.subscribers.delete(onMaterial);
  }

  /** Starts polling the files. */
  watch(): void {
    if (this.watching) return;
    this.watching = true;
    for (const file of this.paths()) {
      watchFile(file, { interval: this.intervalMs, persistent: false }, () => this.maybeReload());
    }
  }

  close(): void {
    if (!this.watching) return;
    this.watching = false;
    for (const file of this.paths()) unwatchFile(file);
  }

  /**
   * Re-reads the files now, changed or not (SIGHUP). "unchanged" when they hold what is in force
   * already; "failed" keeps the current material.
   */
  reload(why = "SIGHUP"): ReloadOutcome {
    this.triedSignature = this.signature();
    const next = loadTlsMaterial(this.options.files);
    if (!next.ok) {
      this.reloadFailuresTotal++;
      this.options.log({ event: "tls_reload_failed", level: "error", why, reason: next.reason, keeping: this.current.summary });
      return "failed";
    }
    const m = next.material;
    if (m.ca.equals(this.current.ca) && m.cert.equals(this.current.cert) && m.key.equals(this.current.key)) {
      // Said, so an operator's SIGHUP always gets an answer in the log.
      this.options.log({ event: "tls_unchanged", why, serialNumber: m.summary.serialNumber });
      return "unchanged";
    }
    this.current = m;
    this.reloadsTotal++;
    this.options.log({ event: "tls_reloaded", why, ...m.summary });
    for (const s of this.subscribers) s(m);
    return "reloaded";
  }

  private maybeReload(): void {
    if (this.signature() === this.triedSignature) return;
    this.reload("file changed");
  }

  private paths(): string[] {
    const f = this.options.files;
    return [...new Set([f.caFile, f.certFile, f.keyFile])];
  }

  /** Identity of the files' current versions: a rename changes the inode, a write the mtime. */
  private signature(): string {
    return this.paths()
      .map((p) => {
        try {
          const s = statSync(p);
          return `${s.ino}:${s.mtimeMs}:${s.size}`;
        } catch {
          return "missing";
        }
      })
      .join("|");
  }
}
