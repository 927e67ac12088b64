// The floor "cluster": one floor_server.ts process (Tenure's client protos answered at once, over
// the same gRPC and TLS stack), so the bench can run Tenure's own raw target against it and show
// what the generator and the stack alone allow on this machine. It has no leader to kill and no
// data: the failover, memory, keepalive and contended figures are not run on it.

import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import type { DevCertificates } from "../dev_certs.ts";
import { type BenchCluster, type BenchMember, OutputTail } from "./cluster.ts";
import { assertPortsFree, HOST } from "./ports.ts";
import { spawnTracked, stopProcess } from "./processes.ts";
import { benchClientSecurity } from "./tenure_cluster.ts";

const FLOOR_ID = "floor";
/** What floor_server.ts prints once it listens (this module is its parent, it only runs it). */
export const FLOOR_READY_LINE = "floor server listening";
const START_TIMEOUT_MS = 20_000;
const SERVER_SCRIPT = fileURLToPath(new URL("./floor_server.ts", import.meta.url));
/** The server's certificate: a member's, as the bench's client expects of a Tenure port. */
const CERTIFICATE_OF = "a";

/** A floor script's TLS flags with member `id`'s certificate, or --insecure without certificates. */
export function securityArgs(certs: DevCertificates | null, id: string): string[] {
  if (certs === null) return ["--insecure"];
  const own = certs.members[id];
  if (own === undefined) throw new Error(`no member certificate for ${id}`);
  return ["--tls-ca", certs.caFile, "--tls-cert", own.certFile, "--tls-key", own.keyFile];
}

/**
 * Runs a bench server script under tsx and resolves once a line of its output contains
 * `readyLine`; rejects with the output's tail if it exits first or does not start in time.
 */
export async function spawnReady(script: string, args: readonly string[], readyLine: string, what: string): Promise<ChildProcess> {
  const child = spawnTracked(process.execPath, ["--import", "tsx", script, ...args]);
  const tail = new OutputTail();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start in ${START_TIMEOUT_MS} ms: ${tail.text()}`)), START_TIMEOUT_MS);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on("line", (line) => {
        tail.push(line);
        if (!line.includes(readyLine)) return;
        clearTimeout(timer);
        resolve();
      });
    }
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (code ${code}, signal ${signal}): ${tail.text()}`));
    });
  });
  return child;
}

export class FloorCluster implements BenchCluster {
  readonly system = "floor" as const;
  readonly members: readonly BenchMember[];

  private constructor(
    private readonly child: ChildProcess,
    address: string,
    private readonly certs: DevCertificates | null,
  ) {
    this.members = [{ id: FLOOR_ID, clientAddress: address, role: "voter" }];
  }

  static async start(certs: DevCertificates | null, port: number): Promise<FloorCluster> {
    await assertPortsFree([port]);
    const address = `${HOST}:${port}`;
    const args = ["--listen", address, ...securityArgs(certs, CERTIFICATE_OF)];
    const child = await spawnReady(SERVER_SCRIPT, args, FLOOR_READY_LINE, "the floor server");
    return new FloorCluster(child, address, certs);
  }

  security(): TransportSecurity {
    return benchClientSecurity(this.certs);
  }

  pid(id: string): number | undefined {
    return id === FLOOR_ID ? this.child.pid : undefined;
  }

  async leaderId(): Promise<string> {
    return FLOOR_ID;
  }

  async kill9(): Promise<void> {
    throw new Error("the floor server has no leader to kill");
  }

  async restart(): Promise<void> {
    throw new Error("the floor server has no leader to kill");
  }

  async stop(): Promise<void> {
    await stopProcess(this.child);
  }
}
