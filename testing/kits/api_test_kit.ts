// Test support: a real gRPC server on 127.0.0.1 (port 0) over a FakeNode, and a grpc-js client
// built from the same protos. Replies come back as plain values: int64 fields are decimal
// strings (PROTO_LOADER_OPTIONS), errors carry their decoded ErrorDetail.

import * as grpc from "@grpc/grpc-js";
import { startApiServer, type ApiServerHandle, type ApiServerOptions } from "../../server/api/api_server.ts";
import { FakeNode } from "./fake_node.ts";
import {
  ERROR_DETAIL_METADATA_KEY,
  decodeErrorDetail,
  serviceDefinition,
  type ErrorDetail,
  type ServiceName,
} from "../../server/api/protos.ts";

export type Message = Record<string, unknown>;

export type Reply =
  | { readonly ok: true; readonly response: Message }
  | { readonly ok: false; readonly code: grpc.status; readonly details: string; readonly detail: ErrorDetail | null };

type ServerOptions = Omit<ApiServerOptions, "node">;

export class TestApi {
  private constructor(
    readonly node: FakeNode,
    readonly handle: ApiServerHandle,
    readonly client: grpc.Client,
  ) {}

  static async start(options: ServerOptions = {}, node = new FakeNode(options.stateConfig)): Promise<TestApi> {
    const handle = await startApiServer({ ...options, node, listenAddress: "127.0.0.1:0" });
    const client = new grpc.Client(`127.0.0.1:${handle.port}`, grpc.credentials.createInsecure());
    return new TestApi(node, handle, client);
  }

  unary(service: ServiceName, method: string, request: object, options: { deadlineMs?: number } = {}): Promise<Reply> {
    const def = method_(service, method);
    return this.unaryWith(def.path, def.requestSerialize, def.responseDeserialize, request, options);
  }

  /** Sends `bytes` as the request body, unchecked (malformed-protobuf tests). */
  unaryRaw(service: ServiceName, method: string, bytes: Buffer): Promise<Reply> {
    const def = method_(service, method);
    return this.unaryWith(def.path, (b: Buffer) => b, def.responseDeserialize, bytes, {});
  }

  private unaryWith<T>(
    path: string,
    serialize: (value: T) => Buffer,
    deserialize: (bytes: Buffer) => object,
    request: T,
    options: { deadlineMs?: number },
  ): Promise<Reply> {
    const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(path, serialize, deserialize, request, new grpc.Metadata(), callOptions, (error, response) => {
        if (error) resolve(errorReply(error));
        else resolve({ ok: true, response: (response ?? {}) as Message });
      });
    });
  }

  bidi(service: ServiceName, method: string): grpc.ClientDuplexStream<object, Message> {
    const def = method_(service, method);
    return this.client.makeBidiStreamRequest(
      def.path,
      def.requestSerialize,
      (bytes: Buffer) => def.responseDeserialize(bytes) as Message,
      new grpc.Metadata(),
      {},
    );
  }

  serverStream(service: ServiceName, method: string, request: object): grpc.ClientReadableStream<Message> {
    const def = method_(service, method);
    return this.client.makeServerStreamRequest(
      def.path,
      def.requestSerialize,
      (bytes: Buffer) => def.responseDeserialize(bytes) as Message,
      request,
      new grpc.Metadata(),
      {},
    );
  }

  /** A unary call that must succeed. */
  async ok(service: ServiceName, method: string, request: object): Promise<Message> {
    const reply = await this.unary(service, method, request);
    if (!reply.ok) throw new Error(`${service}.${method} failed: ${grpc.status[reply.code]} ${reply.details}`);
    return reply.response;
  }

  async close(): Promise<void> {
    this.client.close();
    await this.handle.close(200);
  }
}

function method_(service: ServiceName, method: string) {
  const def = serviceDefinition(service)[method];
  if (def === undefined) throw new Error(`no method ${service}.${method}`);
  return def;
}

export function errorReply(error: grpc.ServiceError): Reply {
  const bin = error.metadata?.get(ERROR_DETAIL_METADATA_KEY)[0];
  const detail = bin instanceof Buffer ? decodeErrorDetail(bin) : null;
  return { ok: false, code: error.code, details: error.details, detail };
}

/** Resolves with the next message of a stream (or rejects with its error). */
export function nextMessage(stream: grpc.ClientReadableStream<Message> | grpc.ClientDuplexStream<object, Message>): Promise<Message> {
  return new Promise((resolve, reject) => {
    const onData = (message: Message): void => {
      cleanup();
      resolve(message);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const cleanup = (): void => {
      stream.off("data", onData);
      stream.off("error", onError);
    };
    stream.on("data", onData);
    stream.on("error", onError);
  });
}

/** Resolves with the status a stream ends with. */
export function streamEnd(stream: grpc.ClientReadableStream<Message> | grpc.ClientDuplexStream<object, Message>): Promise<Reply> {
  return new Promise((resolve) => {
    stream.on("error", (error: grpc.ServiceError) => resolve(errorReply(error)));
    stream.on("status", (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) resolve({ ok: true, response: {} });
    });
  });
}

export async function until(check: () => Promise<boolean>, what: string, timeoutMs = 2_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function assertError(reply: Reply, code: grpc.status, reason: string): Extract<Reply, { ok: false }> {
  if (reply.ok) throw new Error(`expected ${grpc.status[code]} (${reason}), got OK ${JSON.stringify(reply.response)}`);
  if (reply.code !== code || reply.detail?.reason !== reason) {
    throw new Error(`expected ${grpc.status[code]} ${reason}, got ${grpc.status[reply.code]} ${reply.detail?.reason}: ${reply.details}`);
  }
  return reply;
}
