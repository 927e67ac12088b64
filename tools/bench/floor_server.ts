// The bench's floor: a gRPC server that serves Tenure's Lease.Grant, Lease.Revoke, Lock.Acquire
// and Lock.Release from the same protos over the same stack (grpc-js, mutual TLS 1.3 with the
// bench's certificates, or plaintext), and does nothing else: no consensus, no disk, no state.
// The bench drives it with Tenure's own raw target, so the figure it gives is what the load
// generator and the gRPC/TLS stack alone cost on this machine: the most any server written on
// them could reach (floor_cluster.ts, npm run bench -- --floor). Every other method answers
// UNIMPLEMENTED (grpc-js's default handler).
//
//   node --import tsx tools/bench/floor_server.ts --listen HOST:PORT (--insecure | --tls-ca F --tls-cert F --tls-key F)

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "../../proto/tenure_protos.ts";
import { FLOOR_READY_LINE } from "./floor_cluster.ts";

type Unary = grpc.handleUnaryCall<unknown, unknown>;

const answer =
  (response: object): Unary =>
  (_call, callback) =>
    callback(null, response);

function main(): void {
  const { values } = parseArgs({
    strict: true,
    options: {
      listen: { type: "string" },
      insecure: { type: "boolean", default: false },
      "tls-ca": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    },
  });
  const listen = values.listen;
  if (listen === undefined) throw new Error("--listen HOST:PORT is required");
  let credentials: grpc.ServerCredentials;
  if (values.insecure) credentials = grpc.ServerCredentials.createInsecure();
  else {
    const [ca, cert, key] = [values["tls-ca"], values["tls-cert"], values["tls-key"]];
    if (ca === undefined || cert === undefined || key === undefined)
      throw new Error("--tls-ca, --tls-cert and --tls-key are required without --insecure");
    // As Tenure's client port: a client certificate is required and checked against the CA.
    credentials = grpc.ServerCredentials.createSsl(
      readFileSync(ca),
      [{ cert_chain: readFileSync(cert), private_key: readFileSync(key) }],
      true,
    );
  }
  const server = new grpc.Server();
  // A method left out (streams included) gets grpc-js's default handler: UNIMPLEMENTED.
  server.addService(serviceDefinition("Lease"), { Grant: answer({ leaseId: "1" }), Revoke: answer({}) });
  server.addService(serviceDefinition("Lock"), { Acquire: answer({ token: "1" }), Release: answer({ released: true }) });
  server.bindAsync(listen, credentials, (error) => {
    if (error) {
      process.stderr.write(`floor server: ${error.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`${FLOOR_READY_LINE} on ${listen}\n`);
  });
  const stop = (): void => server.tryShutdown(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main();
