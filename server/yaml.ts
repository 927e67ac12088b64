// YAML parsing for the config file, --auth-config and --auth-tokens, loaded on first use: most
// starts read no YAML at all, and the yaml package is about 35 ms of a start's module loading.

import { createRequire } from "node:module";

type YamlModule = { readonly parse: (text: string) => unknown };

let yaml: YamlModule | null = null;

/** yaml's parse(): the text's value, or a YAMLParseError naming the line. */
export function parseYaml(text: string): unknown {
  yaml ??= createRequire(import.meta.url)("yaml") as YamlModule;
  return yaml.parse(text);
}
