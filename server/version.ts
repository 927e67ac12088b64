// The release version, printed by --version and reported in Cluster.Status. Kept equal to
// package.json's "version" by server/config_options.test.ts (a bundle cannot read package.json
// from where it is installed, so the number is compiled in).
export const TENURE_VERSION = "0.1.0";
