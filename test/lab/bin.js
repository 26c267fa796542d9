#!/usr/bin/env node
'use strict';
// Thin launcher for cli.ts: registers the TypeScript loader, then runs the command.
require('./register-ts.js');

try {
  process.exitCode = require('./cli.ts').main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`lab: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
