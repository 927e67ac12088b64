// How the examples reach a cluster: the endpoints and mutual TLS with a client certificate. By
// default, what `npm start` created: endpoints 127.0.0.1:7001..7003 and the certificates under its
// data directory (data/local/tls: ca.pem, client-dev.pem, client-dev.key). Flags override:
//
//   --endpoints host:port,...   the members' client addresses
//   --data-dir DIR              npm start's data directory (default data/local; --witness: data/local-witness)
//   --identity NAME             which of its client certificates (default dev)
//   --tls-ca FILE --tls-cert FILE --tls-key FILE   your own CA and client certificate instead
//   --insecure                  plaintext, for a cluster started with --insecure

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TenureClientOptions } from "../client-sdk/index.ts";

/** The value of `--name`, or `fallback`. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const flag = (name: string): boolean => process.argv.includes(`--${name}`);

/** Endpoints plus `tls` (or `insecure`) for TenureClient, from the flags above. */
export function connectionOptions(): Pick<TenureClientOptions, "endpoints" | "tls" | "insecure"> {
  const endpoints = arg("endpoints", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003").split(",");
  if (flag("insecure")) return { endpoints, insecure: true };
  const dir = join(resolve(arg("data-dir", "data/local")), "tls");
  const identity = arg("identity", "dev");
  const tls = {
    caFile: arg("tls-ca", join(dir, "ca.pem")),
    certFile: arg("tls-cert", join(dir, `client-${identity}.pem`)),
    keyFile: arg("tls-key", join(dir, `client-${identity}.key`)),
  };
  for (const file of Object.values(tls)) {
    if (!existsSync(file)) {
      throw new Error(`${file} not found: run \`npm start\` first (it creates the certificates), or give --tls-ca/--tls-cert/--tls-key`);
    }
  }
  return { endpoints, tls };
}
