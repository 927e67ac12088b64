// Structured logs: one JSON object per line on stdout, with a wall-clock timestamp for humans
// (never used for decisions).

export function log(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ timeMs: Date.now(), ...fields })}\n`);
}
