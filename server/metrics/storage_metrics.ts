// Storage timings: a RaftStorage that wraps the node's, so sqlite_storage.ts carries no metrics
// code. save() is synchronous and returns once durable (one SQLite transaction committed with
// synchronous=FULL: its fsync), so two performance.now() reads around it time the durable write
// of one Ready, fsync included; a background save (saveInBackground, its fsync on the thread pool)
// is timed from its start to its report. Snapshots: the size of the last one stored (made here, or
// received from the leader in a save) and how long storing a self-made one and compacting took.
// Storage recovery found at open (server/storage "Recovery", the storage_recovery log line) is
// counted once per start; a store that is refused never starts, so it has no metrics (alert on
// the scrape target being down; the fatal line names the finding).

import { performance } from "node:perf_hooks";
import { Counter, Gauge, Histogram } from "prom-client";
import type { PersistedState, Snapshot, SnapshotMetadata } from "../core/types.ts";
import type { RaftStorage, StorageIdentity, StorageWrite } from "../storage/raft_storage.ts";
import type { MetricsRegistry } from "./registry.ts";

export const SAVE_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
export const SNAPSHOT_BUCKETS_SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class MeteredStorage implements RaftStorage {
  private readonly saveSeconds: Histogram;
  private readonly snapshotSeconds: Histogram;
  private readonly snapshotBytes: Gauge;
  private readonly snapshots: Counter;

  constructor(
    private readonly inner: RaftStorage,
    registry: MetricsRegistry,
    options: { readonly recoveredAtStart: boolean },
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    const registers = [registry];
    this.saveSeconds = new Histogram({
      name: "tenure_storage_save_seconds",
      help: "Durable write of one Ready (one SQLite transaction, fsync included: synchronous=FULL).",
      buckets: SAVE_BUCKETS_SECONDS,
      registers,
    });
    this.snapshotSeconds = new Histogram({
      name: "tenure_snapshot_save_seconds",
      help: "Storing a snapshot this member made and compacting the log below it.",
      buckets: SNAPSHOT_BUCKETS_SECONDS,
      registers,
    });
    this.snapshotBytes = new Gauge({
      name: "tenure_snapshot_bytes",
      help: "Size of the state-machine image of the last snapshot stored here (made here or received from the leader).",
      registers,
    });
    this.snapshots = new Counter({
      name: "tenure_snapshots_total",
      help: "Snapshots stored since start, by origin: self (made here) or leader (received).",
      labelNames: ["origin"],
      registers,
    });
    const recoveries = new Counter({
      name: "tenure_storage_recoveries_total",
      help: "SAFETY: 1 if this start found lost or damaged log data it could recover from (storage_recovery log line): the member catches up before it votes.",
      registers,
    });
    recoveries.inc(options.recoveredAtStart ? 1 : 0);
  }

  load(): PersistedState {
    return this.inner.load();
  }

  save(write: StorageWrite): void {
    const startMs = this.nowMs();
    this.inner.save(write);
    this.saved(write, startMs);
  }

  /** A write durable now that started at `startMs`: its time, and a leader's snapshot in it. */
  private saved(write: StorageWrite, startMs: number): void {
    this.saveSeconds.observe(Math.max(0, this.nowMs() - startMs) / 1000);
    if (write.snapshot !== null) this.storedSnapshot(write.snapshot, "leader");
  }

  /** Timed to `done`: the write and its fsync off the event loop, as save() times both. */
  saveInBackground(write: StorageWrite, done: (error: Error | null) => void): void {
    const startMs = this.nowMs();
    const finished = (error: Error | null): void => {
      if (error === null) this.saved(write, startMs);
      done(error);
    };
    if (this.inner.saveInBackground === undefined) {
      // A store without it: the write is durable when save() returns; `done` still comes later.
      this.inner.save(write);
      queueMicrotask(() => finished(null));
    } else this.inner.saveInBackground(write, finished);
  }

  saveSnapshotAndCompact(snapshot: Snapshot, logStart?: SnapshotMetadata | null): void {
    const startMs = this.nowMs();
    this.inner.saveSnapshotAndCompact(snapshot, logStart);
    this.snapshotSeconds.observe(Math.max(0, this.nowMs() - startMs) / 1000);
    this.storedSnapshot(snapshot, "self");
  }

  identity(): StorageIdentity | null {
    return this.inner.identity();
  }

  setIdentity(identity: StorageIdentity): void {
    this.inner.setIdentity(identity);
  }

  close(): void {
    this.inner.close();
  }

  private storedSnapshot(snapshot: Snapshot, origin: "self" | "leader"): void {
    this.snapshotBytes.set(snapshot.data.byteLength);
    this.snapshots.labels(origin).inc();
  }
}
