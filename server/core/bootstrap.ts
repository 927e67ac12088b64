// The persisted state every member of a brand-new cluster starts from: an empty snapshot at
// index 0 that carries the initial membership. PURE.

import type { NodeId, PersistedState } from "./types.ts";

export function bootstrapState(voters: readonly NodeId[], witnesses: readonly NodeId[] = []): PersistedState {
  return {
    hardState: { term: 0, vote: "", commit: 0 },
    snapshot: {
      metadata: {
        index: 0,
        term: 0,
        confState: {
          voters: [...voters].sort(),
          votersOutgoing: [],
          learners: [],
          learnersNext: [],
          witnesses: [...witnesses].sort(),
          autoLeave: false,
        },
      },
      data: new Uint8Array(0),
    },
    entries: [],
  };
}
