// tenured's snapshot image check (GrpcPeerTransport's checkSnapshotImage): the image is decoded
// with the state machine's own restore (the witness's check is witnessImageCheck in
// peer_message_checks.ts: a witness never imports server/state).
// Run on every inbound snapshot before the node sees it, so an image the member could not restore
// is refused (and counted) instead of persisted and then fatal at apply, on every restart.

import type { SnapshotMetadata } from "../core/types.ts";
import type { StateConfig } from "../state/limits.ts";
import { LockStateMachine } from "../state/machine.ts";
import type { SnapshotImageCheck } from "./peer_message_checks.ts";

/**
 * tenured: the image must restore exactly as RaftNode.restoreSnapshot will restore it (decode with
 * full shape checks, then the machine's consistency asserts: locks naming missing leases, tokens
 * beyond the counter, ...), and must not be ahead of its metadata (RaftNode asserts that at
 * start). Restoring here costs one extra decode per snapshot received, which is rare.
 */
export function machineImageCheck(config: StateConfig): SnapshotImageCheck {
  return (data: Uint8Array, metadata: SnapshotMetadata): string | null => {
    // The bootstrap snapshot (index 0) carries only the first configuration: an empty machine.
    if (data.byteLength === 0) return metadata.index === 0 ? null : "empty image: a voter's snapshot carries its state machine";
    let machine: LockStateMachine;
    try {
      machine = LockStateMachine.restore(data, config);
    } catch (err) {
      // The image came from another machine: a failed decode (an assertion included) is a
      // refusal here, not this member's broken invariant.
      return `does not restore: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300);
    }
    if (machine.appliedIndex() > metadata.index) {
      return `applied index ${machine.appliedIndex()} is beyond the snapshot's index ${metadata.index}`;
    }
    return null;
  };
}
