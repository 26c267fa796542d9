'use strict';
/**
 * Lets plain `node` load this repository's TypeScript files (the lab CLI runs outside jest and
 * outside the build, which covers src/ only). It compiles each .ts file with @swc/core, the same
 * compiler jest uses here, into CommonJS. Development use only.
 */
const fs = require('node:fs');
const swc = require('@swc/core');

if (!require.extensions['.ts']) {
  require.extensions['.ts'] = function compileTs(module, filename) {
    const source = fs.readFileSync(filename, 'utf8');
    const { code } = swc.transformSync(source, {
      filename,
      sourceMaps: 'inline',
      module: { type: 'commonjs' },
      jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
    });
    module._compile(code, filename);
  };
}
