// The Node.js flags every launch of tenure-witness carries: its bundle's shebang (tools/build.ts),
// deploy/ (systemd, compose, Kubernetes, the runbooks; testing/deploy.test.ts checks each) and the
// bench. V8 reads heap sizes only when the process starts, so they cannot be set from inside it.
//
// Why: the witness holds no state machine, only the log up to the W3 floor, so nearly everything
// it allocates is per-message garbage. V8's young generation grows to two 16 MiB semi-spaces
// under a steady message rate, which is a third of a loaded witness's resident memory and buys it
// nothing: its survivors are few, so a scavenge of a 1 MiB semi-space is cheap. With the cap the
// witness holding a 100,000-lease cluster's traffic measured 97 MiB instead of 125 MiB
// (npm run bench -- --only memory --no-etcd --reps 1).

/** Node.js flags for the witness process, before its bundle on the command line. */
export const WITNESS_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1"];
