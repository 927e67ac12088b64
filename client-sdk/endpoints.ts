// Endpoint checks for the production wire: every endpoint is "host:port" with an explicit port.
// grpc-js takes "10.0.0.1" as 10.0.0.1:443, so a forgotten port would otherwise fail as an
// unreachable member (or reach another service) instead of as the caller's mistake.

import { TenureError } from "./errors.ts";

const PORT_MAX = 65_535;
/** A DNS name or an IPv4 address; an IPv6 address comes in brackets, [::1]. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+\]$/;

/** The reason `endpoint` is not a usable host:port, or null if it is. */
export function endpointProblem(endpoint: string): string | null {
  const example = "endpoints are host:port, for example 10.0.0.1:7001 or [::1]:7001 (there is no default port)";
  if (endpoint.trim() !== endpoint || endpoint === "") return `endpoint ${JSON.stringify(endpoint)} is empty or has spaces: ${example}`;
  if (endpoint.includes("://")) return `endpoint ${JSON.stringify(endpoint)} has a scheme: ${example}`;
  const colon = endpoint.lastIndexOf(":");
  const host = colon < 0 ? endpoint : endpoint.slice(0, colon);
  const port = colon < 0 ? "" : endpoint.slice(colon + 1);
  if (colon < 0 || (host.includes(":") && !IPV6.test(host))) return `endpoint ${JSON.stringify(endpoint)} has no port: ${example}`;
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > PORT_MAX) {
    return `endpoint ${JSON.stringify(endpoint)}: port ${JSON.stringify(port)} is not 1..${PORT_MAX}: ${example}`;
  }
  if (!HOST.test(host) && !IPV6.test(host))
    return `endpoint ${JSON.stringify(endpoint)}: ${JSON.stringify(host)} is not a host name or address: ${example}`;
  return null;
}

/** Throws INVALID_ARGUMENT naming the first bad endpoint (and why) before anything connects. */
export function checkEndpoints(endpoints: readonly string[]): void {
  if (endpoints.length === 0) throw new TenureError("INVALID_ARGUMENT", "at least one endpoint is required");
  for (const e of endpoints) {
    const problem = endpointProblem(e);
    if (problem !== null) throw new TenureError("INVALID_ARGUMENT", problem);
  }
}
