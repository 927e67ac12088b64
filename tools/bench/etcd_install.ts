// Where the bench gets etcd: `etcd` on PATH; if it is missing and this process runs as root on a
// machine with apt-get, Debian's etcd-server and etcd-client packages (printed before it runs);
// otherwise a value that says how to install it, and the bench runs Tenure alone.

import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export type EtcdFound =
  | { readonly ok: true; readonly binary: string; readonly version: string }
  | { readonly ok: false; readonly why: string };

const HOW_TO_INSTALL =
  "install it with `sudo apt-get install -y etcd-server etcd-client` (Debian/Ubuntu; 3.4 is what the baseline used), or put an etcd binary on PATH";

/** The first executable `name` on PATH, or null. */
function which(name: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return null;
}

function versionOf(binary: string): string {
  const out = execFileSync(binary, ["--version"], { encoding: "utf8", timeout: 10_000 });
  return /etcd Version:\s*(\S+)/.exec(out)?.[1] ?? out.split("\n")[0] ?? "unknown";
}

/** Finds etcd, installing it with apt-get when allowed; `log` gets what it does. */
export function findOrInstallEtcd(log: (line: string) => void, options: { readonly install: boolean }): EtcdFound {
  const found = which("etcd");
  if (found !== null) return { ok: true, binary: found, version: versionOf(found) };
  const root = process.getuid?.() === 0;
  if (!options.install || !root || which("apt-get") === null) {
    const because = !options.install ? "--no-install" : !root ? "not running as root" : "no apt-get here";
    return { ok: false, why: `etcd is not on PATH (${because}): ${HOW_TO_INSTALL}` };
  }
  log("etcd is not on PATH: running `apt-get install -y etcd-server etcd-client` (Debian's etcd 3.4; it starts no service here)");
  const r = spawnSync("apt-get", ["install", "-y", "etcd-server", "etcd-client"], { stdio: "inherit", timeout: 600_000 });
  const after = which("etcd");
  if (r.status !== 0 || after === null) {
    return { ok: false, why: `apt-get install etcd-server failed (exit ${r.status}; try \`apt-get update\` first): ${HOW_TO_INSTALL}` };
  }
  return { ok: true, binary: after, version: versionOf(after) };
}
