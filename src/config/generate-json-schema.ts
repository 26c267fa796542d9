/**
 * Writes schema/dualwan.schema.json from the zod schema. Run after a schema change:
 *   npm run build && npm run schema
 * A test fails while the committed file differs from what this would write.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderJsonSchema, SCHEMA_FILE } from './json-schema';
import { findPackageRoot } from './templates';

export function writeJsonSchema(root: string = findPackageRoot()): string {
  const file = path.join(root, SCHEMA_FILE);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, renderJsonSchema());
  return file;
}

if (require.main === module) writeJsonSchema();
