// Command lines quoted in deploy/ texts (Markdown, YAML comments, unit files, Dockerfiles), as
// testing/deploy.test.ts and testing/alerts.test.ts read them: continuations joined, comment marks
// dropped, each command's words. A test parses what it finds with the program's own parser.

/** Lines with shell/Dockerfile continuations (a trailing backslash) joined, comment marks dropped. */
export function logicalLines(text: string): string[] {
  const out: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.replace(/^\s*(#|\/\/)\s?/, "");
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    out.push(pending + line);
    pending = "";
  }
  if (pending !== "") out.push(pending);
  return out;
}

/** The words of a command line: quotes stripped, cut at a comment, pipe, `;`, `&&` or backtick. */
export function words(text: string): string[] {
  const cut = text.split(/\s#|\s\||;|&&|`/)[0] ?? "";
  return (
    cut
      .split(/\s+/)
      // JSON arrays (Dockerfile, compose, Kubernetes): ["--config", "/etc/tenure/tenure.yaml"]
      .map((w) => w.replace(/^[["']+|[\]"',]+$/g, ""))
      .filter((w) => w !== "")
  );
}

/** Every tenurectl command line of a text (inline code, code blocks, comments): its argv. */
export function tenurectlCommands(text: string): { line: string; argv: string[] }[] {
  const out: { line: string; argv: string[] }[] = [];
  for (const line of logicalLines(text)) {
    for (const m of line.matchAll(/(?:^|[\s`(/])(?:npx )?(tenurectl(?:\.mjs)?)((?:[ \t]+[^\s`]+)*)/g)) {
      const span = m[2] ?? "";
      // Prose such as "tenurectl commands" outside code is not a command line: only inline code
      // spans (`tenurectl ...`), lines that start with the command, and the bundle run by node.
      const inCode =
        m[0].trimStart().startsWith("`") || /^\s*(\$ )?(npx )?tenurectl/.test(line) || (m[1] === "tenurectl.mjs" && m[0].startsWith("/"));
      // `tenurectl` alone names the program, not a command line.
      if (!inCode || words(span).length === 0) continue;
      out.push({ line: line.trim(), argv: words(span) });
    }
  }
  return out;
}
