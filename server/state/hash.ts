// FNV-1a for stateHash: two 32-bit lanes with different offset bases, printed as 16 hex digits.
// Not cryptographic; it lets the simulator compare replicas cheaply. PURE.

const FNV_PRIME_32 = 0x01000193;

export function fnv1a64Hex(bytes: Uint8Array): string {
  let lo = 0x811c9dc5;
  let hi = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] ?? 0;
    lo = Math.imul(lo ^ byte, FNV_PRIME_32) >>> 0;
    hi = Math.imul(hi ^ byte ^ (lo & 0xff), FNV_PRIME_32) >>> 0;
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}
