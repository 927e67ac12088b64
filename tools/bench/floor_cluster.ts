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
    const own = certs?.members[CERTIFICATE_OF];
    const security =
      certs === null || own === undefined
        ? ["--insecure"]
        : ["--tls-ca", certs.caFile, "--tls-cert", own.certFile, "--tls-key", own.keyFile];
    const child = spawnTracked(process.execPath, ["--import", "tsx", SERVER_SCRIPT, "--listen", address, ...security]);
    const tail = new OutputTail();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the floor server did not start in ${START_TIMEOUT_MS} ms: ${tail.text()}`)),
        START_TIMEOUT_MS,
      );
      for (const stream of [child.stdout, child.stderr]) {
        if (stream === null) continue;
        createInterface({ input: stream }).on("line", (line) => {
          tail.push(line);
          if (!line.includes(FLOOR_READY_LINE)) return;
          clearTimeout(timer);
          resolve();
        });
      }
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the floor server exited (code ${code}, signal ${signal}): ${tail.text()}`));
      });
    });
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
