// `tenured backup`: calls Cluster/Backup on the leader (following NOT_LEADER hints) and writes
// the backup file atomically: the stream goes to FILE.partial-PID as it arrives (one chunk in
// memory), the image's SHA-256 is checked against the server's trailer, the file's own checksum
// is appended, then fsync, rename over FILE, fsync of the directory. A failed or cancelled
// backup leaves FILE as it was and removes the partial file.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { BearerToken, bearerInterceptor } from "../../client-sdk/bearer_token.ts";
import { channelCredentials, type TransportSecurity } from "../../client-sdk/tls.ts";
import { decodeErrorDetail, ERROR_DETAIL_METADATA_KEY, serviceDefinition } from "../../proto/tenure_protos.ts";
import { CLIENT_RESPONSE_FRAME_FACTOR } from "../limits.ts";
import { BackupFormatError, checkHeader, encodePreamble, fileHash, type BackupHeader, type BackupMember } from "./backup_format.ts";

/** The largest response a member sends (its frame at the largest --client-message-bytes-max). */
const RECEIVE_BYTES_MAX = CLIENT_RESPONSE_FRAME_FACTOR * 256 * 1024 * 1024;
const NO_LEADER_RETRY_MS = 200;

export interface BackupOptions {
  readonly endpoints: readonly string[];
  readonly outFile: string;
  readonly security: TransportSecurity;
  /** A file holding the admin's bearer token (server/auth token file), if not a client certificate. */
  readonly tokenFile?: string;
  /** The whole backup, leader discovery included. */
  readonly timeoutMs: number;
}

export interface BackupSummary {
  readonly outFile: string;
  readonly endpoint: string;
  readonly header: BackupHeader;
  readonly fileBytes: number;
  readonly imageSha256: string;
}

/** A refusal or failure of the call, with what the member said. */
export class BackupCallError extends Error {
  override readonly name = "BackupCallError";
  constructor(
    message: string,
    readonly code: grpc.status,
    readonly reason: string,
    /** NOT_LEADER's hint: the leader's client address ("" when none). */
    readonly leaderAddress: string,
  ) {
    super(message);
  }
}

export async function runBackup(options: BackupOptions): Promise<BackupSummary> {
  if (options.endpoints.length === 0) throw new BackupFormatError("--endpoints needs at least one host:port");
  const credentials = channelCredentials(options.security);
  const interceptors = options.tokenFile === undefined ? [] : [bearerInterceptor(new BearerToken({ tokenFile: options.tokenFile }))];
  const deadlineAtMs = Date.now() + options.timeoutMs;
  const clients = new Map<string, grpc.Client>();
  const clientAt = (endpoint: string): grpc.Client => {
    let c = clients.get(endpoint);
    if (c === undefined) {
      c = new grpc.Client(endpoint, credentials, { interceptors, "grpc.max_receive_message_length": RECEIVE_BYTES_MAX });
      clients.set(endpoint, c);
    }
    return c;
  };
  try {
    let endpoint = options.endpoints[0] ?? "";
    for (;;) {
      try {
        return await backupFrom(clientAt(endpoint), endpoint, options.outFile, deadlineAtMs);
      } catch (error) {
        if (!(error instanceof BackupCallError) || error.code !== grpc.status.UNAVAILABLE || Date.now() >= deadlineAtMs) throw error;
        const hinted = error.leaderAddress;
        if (hinted !== "" && hinted !== endpoint) {
          endpoint = hinted;
          continue;
        }
        const i = options.endpoints.indexOf(endpoint);
        endpoint = options.endpoints[(i + 1) % options.endpoints.length] ?? endpoint;
        await new Promise((resolve) => setTimeout(resolve, NO_LEADER_RETRY_MS));
      }
    }
  } finally {
    for (const c of clients.values()) c.close();
  }
}

async function backupFrom(client: grpc.Client, endpoint: string, outFile: string, deadlineAtMs: number): Promise<BackupSummary> {
  const def = serviceDefinition("Cluster")["Backup"];
  if (def === undefined) throw new Error("tenure.v1.Cluster has no Backup method");
  const call = client.makeServerStreamRequest(
    def.path,
    def.requestSerialize,
    (bytes: Buffer) => def.responseDeserialize(bytes) as Record<string, unknown>,
    {},
    new grpc.Metadata(),
    { deadline: deadlineAtMs },
  );
  const partial = `${outFile}.partial-${process.pid}`;
  const fd = openSync(partial, "wx");
  let renamed = false;
  try {
    const written = await receive(call, fd, endpoint);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(partial, outFile);
    renamed = true;
    fsyncDirectory(dirname(outFile));
    return { outFile, endpoint, ...written };
  } catch (error) {
    call.cancel();
    throw callError(error, endpoint);
  } finally {
    if (!renamed) {
      try {
        closeSync(fd);
      } catch {
        // already closed after the fsync
      }
      rmSync(partial, { force: true });
    }
  }
}

type Part = Record<string, unknown>;

/** Reads the stream into `fd`: header, then exactly imageBytes of chunks, then the trailer. */
async function receive(
  call: AsyncIterable<Part>,
  fd: number,
  endpoint: string,
): Promise<{ header: BackupHeader; fileBytes: number; imageSha256: string }> {
  const file = fileHash();
  const image = createHash("sha256");
  let header: BackupHeader | null = null;
  let imageReceived = 0;
  let fileBytes = 0;
  const append = (bytes: Uint8Array, hashed = true): void => {
    if (hashed) file.update(bytes);
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    fileBytes += bytes.length;
  };
  const source = `the Backup stream from ${endpoint}`;
  for await (const part of call) {
    const which = part["part"];
    if (which === "header") {
      if (header !== null) throw new BackupFormatError(`${source} sent a second header`);
      header = headerOf(part["header"], source);
      append(encodePreamble(header));
    } else if (which === "imageChunk") {
      if (header === null) throw new BackupFormatError(`${source} sent image bytes before its header`);
      const chunk = part["imageChunk"];
      if (!(chunk instanceof Uint8Array)) throw new BackupFormatError(`${source} sent a chunk that is not bytes`);
      imageReceived += chunk.length;
      if (imageReceived > header.imageBytes)
        throw new BackupFormatError(`${source} sent more than the ${header.imageBytes} image bytes announced`);
      image.update(chunk);
      append(chunk);
    } else if (which === "trailer") {
      if (header === null || imageReceived !== header.imageBytes) {
        throw new BackupFormatError(`${source} ended after ${imageReceived} of ${header?.imageBytes ?? "?"} image bytes`);
      }
      const trailer = part["trailer"] as Part | undefined;
      const expected = trailer?.["imageSha256"];
      const actual = image.digest();
      if (!(expected instanceof Uint8Array) || !actual.equals(expected)) {
        throw new BackupFormatError(`${source}: the image's SHA-256 does not match the member's trailer (damaged in transit)`);
      }
      append(file.digest(), false);
      return { header, fileBytes, imageSha256: actual.toString("hex") };
    } else {
      throw new BackupFormatError(`${source} sent a message without a part`);
    }
  }
  throw new BackupFormatError(`${source} ended without its trailer`);
}

/** The proto BackupHeader (uint64 as decimal strings) as the file's header, checked. */
function headerOf(raw: unknown, source: string): BackupHeader {
  const o = (raw ?? {}) as Part;
  const num = (key: string): number => Number(o[key]);
  const members = Array.isArray(o["members"]) ? (o["members"] as Part[]).map(memberOf) : null;
  return checkHeader(
    {
      formatVersion: num("formatVersion"),
      clusterId: o["clusterId"],
      appliedIndex: num("appliedIndex"),
      term: num("term"),
      tokenEpoch: num("tokenEpoch"),
      lastToken: num("lastToken"),
      lastLeaseId: num("lastLeaseId"),
      imageBytes: num("imageBytes"),
      members,
      takenAtMs: num("takenAtMs"),
      leaderId: o["leaderId"],
    },
    source,
  );
}

function memberOf(m: Part): BackupMember {
  const role = m["witness"] === true ? "witness" : m["role"] === "MEMBER_ROLE_LEARNER" ? "learner" : "voter";
  return { id: String(m["id"] ?? ""), address: String(m["address"] ?? ""), role };
}

function callError(error: unknown, endpoint: string): unknown {
  if (!isServiceError(error)) return error;
  const raw = error.metadata?.get(ERROR_DETAIL_METADATA_KEY)[0];
  let reason = "";
  let leaderAddress = "";
  if (Buffer.isBuffer(raw)) {
    const detail = decodeErrorDetail(raw);
    reason = detail.reason;
    leaderAddress = detail.leaderAddress;
  }
  const message = `Backup at ${endpoint}: ${grpc.status[error.code]}${reason === "" ? "" : ` ${reason}`}: ${error.details}`;
  return new BackupCallError(message, error.code, reason, leaderAddress);
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as Partial<grpc.ServiceError>).code === "number" && "details" in error;
}

function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
