// Seeded PRNG injected into the core (election jitter) and the simulator (faults, workloads).
// The core never calls Math.random: one seed must replay one run exactly. PURE.

export interface Random {
  /** Uniform integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
  /** Uniform float in [0, 1). */
  nextFloat(): number;
}

/** sfc32 seeded through splitmix32: fast, 128 bits of state, good enough for simulation. */
export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t >>> 0;
  }

  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  nextInt(maxExclusive: number): number {
    if (!(maxExclusive > 0) || !Number.isSafeInteger(maxExclusive)) {
      throw new RangeError(`nextInt bound must be a positive integer, got ${maxExclusive}`);
    }
    return Math.floor(this.nextFloat() * maxExclusive);
  }

  /** One element of a non-empty list, uniformly. */
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.nextInt(xs.length)];
    if (x === undefined) throw new RangeError("pick from an empty list");
    return x;
  }

  /** Derives an independent stream (e.g. one per node) so adding draws in one place does not
   *  shift every other stream. */
  fork(): SeededRandom {
    return new SeededRandom(this.nextUint32());
  }
}
