// A parser of the Prometheus text exposition (version 0.0.4) for tests: what a scraper would
// read, so tests assert on the served text rather than on prom-client's objects.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL))
      labels[l[1] ?? ""] = (l[2] ?? "").replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    const raw = m[3] ?? "";
    const value = raw === "+Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? Number.NEGATIVE_INFINITY : Number(raw);
    // NaN in any case, as Prometheus reads it (Go's ParseFloat): prom-client writes "Nan" for
    // a process metric with no samples yet (nodejs_eventloop_lag_mean_seconds at start).
    if (Number.isNaN(value) && raw.toLowerCase() !== "nan") throw new Error(`not a value: ${line}`);
    out.push({ name: m[1] ?? "", labels, value });
  }
  return out;
}

/** The samples named `name` whose labels include `labels`. */
export function samplesOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample named `name` with `labels`; throws if there is none or more than one. */
export function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samplesOf(samples, name, labels);
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name}${JSON.stringify(labels)}`);
  return found[0]?.value ?? Number.NaN;
}

/** The HELP line of `name`, or null. */
export function helpOf(text: string, name: string): string | null {
  const line = text.split("\n").find((l) => l.startsWith(`# HELP ${name} `));
  return line === undefined ? null : line.slice(`# HELP ${name} `.length);
}
