// Every size limit of a member, and the relations that make them work together (TigerBeetle's
// constants.zig: each *_max in one place, each relation asserted). assertLimits() runs at the start
// of tenured and tenure-witness with the configured values; a broken relation stops the start with
// a message that names both sides and their values.
//
// Where the numbers live: the state machine's limits (leases, names, sessions, field sizes) stay in
// server/state/limits.ts and the Raft batch limits in server/core/config.ts, because pure code
// needs them there. This module imports neither server/state (a witness must never reach it,
// witness/purity.test.ts) nor anything with I/O: the state side arrives as StateSizes, computed by
// server/state/limits.ts stateSizes(). It holds the frame and snapshot limits, the wire-size
// constants the peer codec estimates with, and the relations.
//
// The chain, smallest first:
//   largest valid command  <= ENTRY_DATA_BYTES_MAX (= COMMAND_BYTES_MAX)
//   a full-size entry      <= bytesPerMessageMax (one append batch)
//   the largest batch      <= peerMessageBytesMax (one gRPC frame), as is one snapshot chunk
//   a snapshot             <= snapshotBytesMax, sent in snapshotChunkBytes chunks
//   the state at its maxima <= snapshotBytesMax less SNAPSHOT_HEADROOM (the aggregate limits of
//                             server/state/limits.ts bound every table)
//   snapshotBytesMax       <= what V8 can decode as one string and SQLite can store as one blob
//   largest valid request  <= clientMessageBytesMax (the client API's receive frame)

import { ENTRY_DATA_BYTES_MAX, RAFT_LIMITS_DEFAULT } from "./core/config.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------- frames

/** The client API's receive frame (server/api, the witness's client stub). */
export const CLIENT_MESSAGE_BYTES_MAX_DEFAULT = 256 * KiB;
/** Responses may be larger than requests (a KeepAlive answer lists every renewal). */
export const CLIENT_RESPONSE_FRAME_FACTOR = 4;
/** The peer protocol's frame, both ways: one PeerBatch or one SnapshotChunk. */
export const PEER_MESSAGE_BYTES_MAX_DEFAULT = 4 * MiB;

// ---------------------------------------------------------------- snapshots

/** Data bytes per InstallSnapshot chunk. */
export const SNAPSHOT_CHUNK_BYTES_DEFAULT = 1 * MiB;
/**
 * The largest snapshot a member sends or reassembles; a larger one is refused and logged. 288 MiB
 * (was 256) since every lease and session also carries its identity (server/state/caller.ts):
 * a state at the maxima is 244 MiB (with each session's 32-digit request digest, 4 MiB of it),
 * within it with an eighth to spare.
 */
export const SNAPSHOT_BYTES_MAX_DEFAULT = 288 * MiB;
/**
 * Inbound transfers a member reassembles at once, from different senders (a sender's newer transfer
 * replaces its own): the leader's, and perhaps a deposed leader's that has not noticed yet. With
 * one image buffer each, inbound snapshots hold at most this times snapshotBytesMax.
 */
export const SNAPSHOT_INBOUND_TRANSFERS_MAX = 2;
/** A receiver drops a partial snapshot when no chunk arrives for this long. */
export const SNAPSHOT_CHUNK_TIMEOUT_MS = 10_000;
/** A transfer's deadline: this much, plus its size at SNAPSHOT_SEND_BYTES_PER_SECOND_MIN. */
export const SNAPSHOT_SEND_TIMEOUT_MS_MIN = 10_000;
export const SNAPSHOT_SEND_BYTES_PER_SECOND_MIN = 1 * MiB;
/**
 * After a complete transfer the same snapshot is not sent to that peer again for this long. Raft
 * asks for it at every heartbeat until the follower has restored it and answered; a restore of a
 * large image takes seconds, so without this the leader would stream it again and again.
 */
export const SNAPSHOT_RESEND_INTERVAL_MS = 5_000;

/** Deadline of one snapshot transfer of `bytes`. */
export function snapshotSendTimeoutMs(bytes: number): number {
  return SNAPSHOT_SEND_TIMEOUT_MS_MIN + Math.ceil((bytes / SNAPSHOT_SEND_BYTES_PER_SECOND_MIN) * 1000);
}

// ---------------------------------------------------------------- ceilings of the platform

/** V8's longest string (2^29 - 24 UTF-16 units, Node 20 on 64-bit): one image is one JSON text. */
export const V8_STRING_LENGTH_MAX = 2 ** 29 - 24;
/** SQLite's SQLITE_MAX_LENGTH default: the snapshot is one blob in the store. */
export const SQLITE_BLOB_BYTES_MAX = 1_000_000_000;

/**
 * The part of snapshotBytesMax a state at its maxima must leave free: an eighth. The image bound
 * (server/state/limits.ts stateImageBytesAtMaxima) is checked against the encoder on worst-case
 * records, not proved over every encoding; the margin keeps an encoding those samples miss (a
 * longer message, a field added to a record) from making the largest state unsendable before a
 * test catches it. A limit raised into the margin fails the start, like any broken relation.
 */
export const SNAPSHOT_HEADROOM_NUMERATOR = 1;
export const SNAPSHOT_HEADROOM_DENOMINATOR = 8;

/** snapshotBytesMax less the headroom: what the state at its maxima may take. */
export function snapshotBytesForState(snapshotBytesMax: number): number {
  return snapshotBytesMax - Math.ceil((snapshotBytesMax * SNAPSHOT_HEADROOM_NUMERATOR) / SNAPSHOT_HEADROOM_DENOMINATOR);
}

// ---------------------------------------------------------------- wire-size estimates

/** Node ids are short operator-chosen names; the cap keeps a hostile frame from bloating logs. */
export const NODE_ID_LENGTH_MAX = 64;
/** server/config.ts admits cluster ids of at most this many characters. */
export const CLUSTER_ID_LENGTH_MAX = 128;
/**
 * peer_codec.estimateMessageBytes: an upper bound of one message's encoding, so batches are cut
 * below the frame without encoding twice. Fixed part, per entry, and a batch's own header.
 */
export const PEER_MESSAGE_OVERHEAD_BYTES = 96;
export const PEER_ENTRY_OVERHEAD_BYTES = 40;
export const PEER_FRAME_OVERHEAD_BYTES = 1024;
/** A data chunk's fields besides its data (offset, tags, lengths). */
export const SNAPSHOT_CHUNK_OVERHEAD_BYTES = 64;
/** Protobuf: a length-delimited field's tag and length; a uint64 field's tag and varint. */
const PROTO_FIELD_OVERHEAD_BYTES = 6;
const PROTO_UINT64_FIELD_BYTES_MAX = 11;
const PROTO_UINT64_PACKED_BYTES_MAX = 10;

/** What one PeerBatch may carry: the frame minus its header (ids in UTF-8, 3 bytes per unit). */
export function peerBatchBytesMax(peerMessageBytesMax: number, clusterIdLength = CLUSTER_ID_LENGTH_MAX): number {
  return peerMessageBytesMax - PEER_FRAME_OVERHEAD_BYTES - 3 * clusterIdLength;
}

/**
 * The largest append message the core builds, as the codec estimates it. raft_log.slice() stops
 * at bytesPerMessageMax but always takes one entry, so the data is at most
 * max(bytesPerMessageMax, one full entry), and never more than entriesPerMessageMax full entries.
 */
export function appendMessageBytesMax(limits: Pick<Limits, "entriesPerMessageMax" | "bytesPerMessageMax">): number {
  const dataBytes = Math.min(Math.max(limits.bytesPerMessageMax, ENTRY_DATA_BYTES_MAX), limits.entriesPerMessageMax * ENTRY_DATA_BYTES_MAX);
  const idsBytes = 2 * 3 * NODE_ID_LENGTH_MAX;
  return PEER_MESSAGE_OVERHEAD_BYTES + idsBytes + limits.entriesPerMessageMax * PEER_ENTRY_OVERHEAD_BYTES + dataBytes;
}

// ---------------------------------------------------------------- the limits and their relations

/** The fields of server/state/limits.ts StateLimits that size client requests. */
export interface RequestFieldLimits {
  readonly clientIdBytesMax: number;
  readonly nameBytesMax: number;
  readonly valueBytesMax: number;
  readonly keepAliveLeaseIdsMax: number;
}

/** The state side, from server/state/limits.ts stateSizes(); null on a witness, which has none. */
export interface StateSizes {
  readonly requestFields: RequestFieldLimits;
  /** The largest encoded valid command (commandBytesAtMaxima). */
  readonly commandBytesMax: number;
  /** Bounds of the snapshot image of a state at the maxima (stateImageBytesAtMaxima). */
  readonly image: {
    readonly fixedBytes: number;
    readonly leasesBytes: number;
    readonly namesBytes: number;
    readonly waitersBytes: number;
    readonly valuesBytes: number;
    readonly sessionsBytes: number;
    readonly keepAliveIdsBytes: number;
    readonly idleBytes: number;
    readonly totalBytes: number;
  };
}

export interface Limits {
  readonly clientMessageBytesMax: number;
  readonly peerMessageBytesMax: number;
  /** RaftConfig batching. */
  readonly entriesPerMessageMax: number;
  readonly bytesPerMessageMax: number;
  readonly snapshotChunkBytes: number;
  readonly snapshotBytesMax: number;
  readonly state: StateSizes | null;
}

export const DEFAULT_LIMITS: Omit<Limits, "state"> = {
  clientMessageBytesMax: CLIENT_MESSAGE_BYTES_MAX_DEFAULT,
  peerMessageBytesMax: PEER_MESSAGE_BYTES_MAX_DEFAULT,
  entriesPerMessageMax: RAFT_LIMITS_DEFAULT.entriesPerMessageMax,
  bytesPerMessageMax: RAFT_LIMITS_DEFAULT.bytesPerMessageMax,
  snapshotChunkBytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
  snapshotBytesMax: SNAPSHOT_BYTES_MAX_DEFAULT,
};

/** One relation: lhs <= rhs. Every relation is asserted. */
export interface LimitRelation {
  readonly what: string;
  readonly lhs: string;
  readonly lhsValue: number;
  readonly rhs: string;
  readonly rhsValue: number;
}

export function describeRelation(r: LimitRelation): string {
  return `${r.what}: ${r.lhs} = ${formatBytes(r.lhsValue)} must be <= ${r.rhs} = ${formatBytes(r.rhsValue)}`;
}

/** "4194304 (4.0 MiB)": exact for a reader comparing, rounded for one reading. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 * MiB],
    ["MiB", MiB],
    ["KiB", KiB],
  ] as const) {
    if (n >= size) return `${n} (${(n / size).toFixed(1)} ${unit})`;
  }
  return String(n);
}

const rel = (what: string, lhs: readonly [string, number], rhs: readonly [string, number]): LimitRelation => ({
  what,
  lhs: lhs[0],
  lhsValue: lhs[1],
  rhs: rhs[0],
  rhsValue: rhs[1],
});

/** Every relation between the limits (tests list them; assertLimits checks). */
export function limitRelations(l: Limits): LimitRelation[] {
  const batchBytesMax: readonly [string, number] = ["peerMessageBytesMax - batch header", peerBatchBytesMax(l.peerMessageBytesMax)];
  const relations = [
    rel(
      "a full-size entry fits one append batch",
      ["ENTRY_DATA_BYTES_MAX + entry overhead", ENTRY_DATA_BYTES_MAX + PEER_ENTRY_OVERHEAD_BYTES],
      ["bytesPerMessageMax", l.bytesPerMessageMax],
    ),
    rel(
      "the largest append batch (entriesPerMessageMax entries, at most bytesPerMessageMax or one full entry of data) fits one peer frame",
      ["appendMessageBytesMax", appendMessageBytesMax(l)],
      batchBytesMax,
    ),
    rel(
      "a snapshot chunk fits one peer frame",
      ["snapshotChunkBytes + chunk overhead", l.snapshotChunkBytes + SNAPSHOT_CHUNK_OVERHEAD_BYTES],
      ["peerMessageBytesMax", l.peerMessageBytesMax],
    ),
    rel("a snapshot holds at least one chunk", ["snapshotChunkBytes", l.snapshotChunkBytes], ["snapshotBytesMax", l.snapshotBytesMax]),
    rel(
      "the largest snapshot decodes as one JavaScript string",
      ["snapshotBytesMax", l.snapshotBytesMax],
      ["V8_STRING_LENGTH_MAX", V8_STRING_LENGTH_MAX],
    ),
    rel(
      "the largest snapshot fits one SQLite blob",
      ["snapshotBytesMax", l.snapshotBytesMax],
      ["SQLITE_BLOB_BYTES_MAX", SQLITE_BLOB_BYTES_MAX],
    ),
  ];
  return l.state === null ? relations : [...relations, ...stateRelations(l, l.state)];
}

function stateRelations(l: Limits, s: StateSizes): LimitRelation[] {
  const f = s.requestFields;
  const clientFrame: readonly [string, number] = ["clientMessageBytesMax", l.clientMessageBytesMax];
  const session = PROTO_FIELD_OVERHEAD_BYTES + f.clientIdBytesMax + PROTO_UINT64_FIELD_BYTES_MAX;
  const keepAlive = session + PROTO_FIELD_OVERHEAD_BYTES + f.keepAliveLeaseIdsMax * PROTO_UINT64_PACKED_BYTES_MAX;
  const campaign = session + 2 * PROTO_FIELD_OVERHEAD_BYTES + f.nameBytesMax + f.valueBytesMax + 2 * PROTO_UINT64_FIELD_BYTES_MAX;
  const image = s.image;
  const breakdown = [
    `leases ${formatBytes(image.leasesBytes)}`,
    `names ${formatBytes(image.namesBytes)}`,
    `waiters ${formatBytes(image.waitersBytes)}`,
    `values ${formatBytes(image.valuesBytes)}`,
    `sessions ${formatBytes(image.sessionsBytes)}`,
    `stored KeepAlive ids ${formatBytes(image.keepAliveIdsBytes)}`,
    `idle ${formatBytes(image.idleBytes)}`,
  ].join(" + ");
  const headroom = `${SNAPSHOT_HEADROOM_NUMERATOR}/${SNAPSHOT_HEADROOM_DENOMINATOR}`;
  return [
    rel(
      "the largest valid command fits one entry",
      ["commandBytesAtMaxima", s.commandBytesMax],
      ["ENTRY_DATA_BYTES_MAX (COMMAND_BYTES_MAX)", ENTRY_DATA_BYTES_MAX],
    ),
    rel(
      "a KeepAlive of keepAliveLeaseIdsMax ids fits the client frame",
      [`KeepAlive request of ${f.keepAliveLeaseIdsMax} ids`, keepAlive],
      clientFrame,
    ),
    rel(
      "a Campaign with a full name and value fits the client frame",
      ["Campaign request at nameBytesMax + valueBytesMax", campaign],
      clientFrame,
    ),
    rel(
      "a snapshot of a full lease table fits the snapshot limit",
      ["image header + leasesMax leases", image.fixedBytes + image.leasesBytes],
      ["snapshotBytesMax", l.snapshotBytesMax],
    ),
    // Every table is bounded in aggregate (leasesMax, namesMax, waitersMax, valueBytesTotalMax,
    // sessionsMax, keepAliveLeaseIdsStoredMax), each enforced by the state machine, so the
    // largest state a cluster can reach has a snapshot a member can send and restore.
    rel(
      `a snapshot of a state with every table at its maximum fits the snapshot limit, with ${headroom} headroom`,
      [`state image at the maxima (${breakdown})`, image.totalBytes],
      [`snapshotBytesMax less ${headroom}`, snapshotBytesForState(l.snapshotBytesMax)],
    ),
  ];
}

export class LimitsError extends Error {
  override readonly name = "LimitsError";
}

/** Throws LimitsError naming every broken relation. */
export function assertLimits(l: Limits): void {
  for (const [key, value] of Object.entries(l)) {
    if (key === "state") continue;
    if (!Number.isSafeInteger(value) || (value as number) < 1)
      throw new LimitsError(`limit ${key} must be a positive integer, got ${String(value)}`);
  }
  const violations = limitRelations(l).filter((r) => r.lhsValue > r.rhsValue);
  if (violations.length > 0) {
    throw new LimitsError(`limits do not fit together:\n  ${violations.map(describeRelation).join("\n  ")}`);
  }
}

/** The frame and snapshot limits a member is configured with (ServerConfig has these fields). */
export type FrameLimits = Pick<Limits, "clientMessageBytesMax" | "peerMessageBytesMax" | "snapshotChunkBytes" | "snapshotBytesMax">;

/**
 * At the start of tenured and tenure-witness: throws LimitsError when the configured limits do not
 * fit together. A member with a state machine then logs (event "limits", info) how much of the
 * snapshot limit its largest state takes, for an operator sizing --snapshot-bytes-max.
 */
export function assertLimitsAtStart(
  options: {
    readonly frames: FrameLimits;
    readonly raft: Pick<Limits, "entriesPerMessageMax" | "bytesPerMessageMax">;
    readonly state: StateSizes | null;
  },
  log: (fields: Record<string, unknown>) => void,
): void {
  const { frames, raft, state } = options;
  assertLimits({
    clientMessageBytesMax: frames.clientMessageBytesMax,
    peerMessageBytesMax: frames.peerMessageBytesMax,
    snapshotChunkBytes: frames.snapshotChunkBytes,
    snapshotBytesMax: frames.snapshotBytesMax,
    entriesPerMessageMax: raft.entriesPerMessageMax,
    bytesPerMessageMax: raft.bytesPerMessageMax,
    state,
  });
  if (state === null) return;
  log({
    level: "info",
    event: "limits",
    stateImageBytesAtMaxima: state.image.totalBytes,
    snapshotBytesMax: frames.snapshotBytesMax,
    snapshotBytesForState: snapshotBytesForState(frames.snapshotBytesMax),
  });
}
