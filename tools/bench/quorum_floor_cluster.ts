// The quorum floor "cluster": quorum_floor_server.ts as a leader (a) and two followers (b, c) on
// fixed 127.0.0.1 ports, data under a temp root. The bench runs Tenure's own raw target against
// the leader: the request-path figures and the contended one (it keeps a lock table), not
// failover, memory or keepalive (no elections, no lease expiry).

import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TransportSecurity } from "../../client-sdk/tls.ts";
import type { DevCertificates } from "../dev_certs.ts";
import { registerCleanup } from "./cleanup.ts";
import type { BenchCluster, BenchMember } from "./cluster.ts";
import { securityArgs, spawnReady } from "./floor_cluster.ts";
import { assertPortsFree, HOST } from "./ports.ts";
import { stopProcess } from "./processes.ts";
import { benchClientSecurity } from "./tenure_cluster.ts";

/** What quorum_floor_server.ts prints once it listens (this module is its parent, it only runs it). */
export const QUORUM_FLOOR_READY_LINE = "quorum floor listening";
/** The followers' member ids, in --peers order (their certificates name them). */
export const QUORUM_FLOOR_FOLLOWER_IDS = ["b", "c"] as const;
const LEADER_ID = "a";
const SERVER_SCRIPT = fileURLToPath(new URL("./quorum_floor_server.ts", import.meta.url));

export class QuorumFloorCluster implements BenchCluster {
  readonly system = "floor" as const;
  readonly members: readonly BenchMember[];

  private constructor(
    private readonly children: ReadonlyMap<string, ChildProcess>,
    address: string,
    private readonly certs: DevCertificates | null,
    private readonly removeRoot: () => void,
  ) {
    this.members = [{ id: LEADER_ID, clientAddress: address, role: "voter" }];
  }

  /** The leader listens on `basePort`, the followers on the two ports above it. */
  static async start(certs: DevCertificates | null, basePort: number): Promise<QuorumFloorCluster> {
    const ports = [basePort, basePort + 1, basePort + 2];
    await assertPortsFree(ports);
    const root = mkdtempSync(join(tmpdir(), "tenure-quorum-floor-"));
    const removeRoot = registerCleanup(() => rmSync(root, { recursive: true, force: true }));
    const children = new Map<string, ChildProcess>();
    const stopAll = async (): Promise<void> => {
      await Promise.all([...children.values()].map((c) => stopProcess(c)));
      removeRoot();
    };
    try {
      const peers: string[] = [];
      for (const [i, id] of QUORUM_FLOOR_FOLLOWER_IDS.entries()) {
        const address = `${HOST}:${ports[i + 1]}`;
        peers.push(address);
        const args = ["--role", "follower", "--listen", address, "--data", join(root, id), ...securityArgs(certs, id)];
        children.set(id, await spawnReady(SERVER_SCRIPT, args, QUORUM_FLOOR_READY_LINE, `quorum floor ${id}`));
      }
      const address = `${HOST}:${basePort}`;
      const args = ["--role", "leader", "--listen", address, "--peers", peers.join(","), "--data", join(root, LEADER_ID)];
      children.set(
        LEADER_ID,
        await spawnReady(SERVER_SCRIPT, [...args, ...securityArgs(certs, LEADER_ID)], QUORUM_FLOOR_READY_LINE, "quorum floor a"),
      );
      return new QuorumFloorCluster(children, address, certs, removeRoot);
    } catch (error) {
      await stopAll();
      throw error;
    }
  }

  security(): TransportSecurity {
    return benchClientSecurity(this.certs);
  }

  pid(id: string): number | undefined {
    return this.children.get(id)?.pid;
  }

  async leaderId(): Promise<string> {
    return LEADER_ID;
  }

  async kill9(): Promise<void> {
    throw new Error("the quorum floor has no elections: its leader is not killed");
  }

  async restart(): Promise<void> {
    throw new Error("the quorum floor has no elections: its leader is not killed");
  }

  async stop(): Promise<void> {
    await Promise.all([...this.children.values()].map((c) => stopProcess(c)));
    this.removeRoot();
  }
}
