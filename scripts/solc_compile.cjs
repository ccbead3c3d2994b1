#!/usr/bin/env node
// Small solc-js driver used by scripts/compile_contracts.py and the devnet builds.
//
// usage:  node scripts/solc_compile.cjs [SOLC_PACKAGE]
//         SOLC_PACKAGE is the npm package (or alias) that holds solc-js, `solc` by default,
//         e.g. `solc-0.8.27` for the alias "solc-0.8.27": "npm:solc@0.8.27" in package.json.
// stdin:  a solc Standard JSON input (sources given by "content"; settings.remappings apply).
// stdout: {"solcVersion": "<solc.version()>", "output": <Standard JSON output>}
//
// Imports that are not in the input (after remapping) are resolved relative to the project
// root (the parent of scripts/) and then to its node_modules/, so
// `import "@morpho-org/morpho-blue/src/..."` works after `npm install`.
//
// Exit codes: 0 compiled (the caller inspects output.errors), 2 solc-js missing,
// 3 bad input.
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const SOLC_PACKAGE = process.argv[2] || 'solc';

if (!/^(@[a-z0-9._-]+\/)?[a-z0-9._-]+$/i.test(SOLC_PACKAGE)) {
  process.stderr.write(`solc_compile.cjs: ${JSON.stringify(SOLC_PACKAGE)} is not an npm package name\n`);
  process.exit(3);
}

let solc;
try {
  solc = require(require.resolve(SOLC_PACKAGE, { paths: [ROOT] }));
} catch (err) {
  process.stderr.write(
    `solc-js (npm package ${SOLC_PACKAGE}) is not installed under ${path.join(ROOT, 'node_modules')} ` +
      `(${err.code || err.message}); run \`npm install\` in ${ROOT}\n`,
  );
  process.exit(2);
}

function findImports(importPath) {
  const candidates = [path.join(ROOT, importPath), path.join(ROOT, 'node_modules', importPath)];
  for (const file of candidates) {
    const resolved = path.resolve(file);
    // never read outside the project tree
    if (!resolved.startsWith(ROOT + path.sep)) continue;
    if (fs.existsSync(resolved) && fs.statSync(resolved).isFile()) {
      return { contents: fs.readFileSync(resolved, 'utf8') };
    }
  }
  return { error: `import not found: ${importPath}` };
}

let input;
try {
  input = fs.readFileSync(0, 'utf8');
  JSON.parse(input);
} catch (err) {
  process.stderr.write(`solc_compile.cjs: stdin is not a JSON document: ${err.message}\n`);
  process.exit(3);
}

const output = JSON.parse(solc.compile(input, { import: findImports }));
process.stdout.write(JSON.stringify({ solcVersion: solc.version(), output }));
process.stdout.write('\n');
