/**
 * VM templates: `vm-templates/<name>.yaml`, the shape of a router VM (OS type, firmware, size,
 * image). A playbook's `vm:` section names a template and overrides what it needs to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { Diagnostic } from '../core/diagnostics';
import { issuesToDiagnostics } from './issues';
import type { JsonSchemaNode } from './json-schema';
import { parseYaml } from './source';

const IMAGE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HEX = /^[0-9a-fA-F]+$/;

/** Proxmox `ostype` values (qemu-server). FreeBSD-based OPNsense is "other". */
const OSTYPES = ['other', 'l24', 'l26', 'solaris', 'wxp', 'w2k', 'w2k3', 'w2k8', 'wvista', 'win7', 'win8', 'win10', 'win11'] as const;

export const VmTemplateSchema = z
  .strictObject({
    description: z.string().min(1).optional().describe('What this template is for.'),
    ostype: z.enum(OSTYPES).describe('Proxmox guest OS type: "other" for FreeBSD/OPNsense, "l26" for Linux.'),
    machine: z
      .literal('q35')
      .default('q35')
      .describe('Machine type. Always q35: PCIe passthrough (pcie=1) needs it, and Proxmox only fails at start without it.'),
    bios: z.enum(['seabios', 'ovmf']).describe('Firmware: seabios for images with BIOS boot code (the OPNsense nano image), ovmf for UEFI.'),
    cpu: z.string().min(1).default('host').describe('CPU type; "host" passes the host CPU flags (AES-NI) through. Default host.'),
    cores: z.number().int().min(1).max(128).describe('Virtual CPU cores.'),
    memoryMiB: z.number().int().min(512).max(1048576).describe('Memory in MiB.'),
    diskGiB: z.number().int().min(1).max(4096).describe('Disk size in GiB; the imported image is grown to this size.'),
    balloon: z
      .literal(0)
      .default(0)
      .describe('Memory ballooning: always 0 (off), because passed-through devices pin all guest memory.'),
    serialConsole: z.boolean().default(true).describe('Give the VM a serial console (serial0: socket), which the bootstrap drives. Default true.'),
    onboot: z.boolean().default(true).describe('Start the VM when the host boots. Default true.'),
    startupOrder: z.number().int().min(0).default(1).describe('Proxmox startup order: the router starts first. Default 1.'),
    image: z
      .strictObject({
        url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).describe('Download URL (dualwan downloads it and uploads the unpacked image to the host).'),
        filename: z
          .string()
          .regex(IMAGE_FILE, 'must be a plain file name')
          .regex(/\.(raw|qcow2|vmdk)$/, 'must end in .raw, .qcow2 or .vmdk (the formats Proxmox imports a VM disk from)')
          .describe("File name of the unpacked image in the image storage's import content."),
        checksum: z.string().regex(HEX, 'must be a hexadecimal digest').describe('Published checksum of the downloaded file.'),
        checksumAlgorithm: z.enum(['sha256', 'sha512']).describe('Algorithm of the checksum.'),
        compression: z.enum(['bz2', 'gz', 'lzo', 'zst']).optional().describe('Compression dualwan removes after download, with the system tool (bzip2, gzip, lzop, zstd).'),
      })
      .superRefine((image, ctx) => {
        const want = image.checksumAlgorithm === 'sha512' ? 128 : 64;
        if (HEX.test(image.checksum) && image.checksum.length !== want) {
          ctx.addIssue({ code: 'custom', path: ['checksum'], message: `a ${image.checksumAlgorithm} checksum has ${want} hexadecimal digits` });
        }
      })
      .describe('The image the VM disk is made from.'),
  })
  .describe('A router VM template.');

export type VmTemplate = z.output<typeof VmTemplateSchema>;

export const TEMPLATE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * The package's root directory, found by walking up from `start`. Works from `src/config` (jest, ts
 * sources) and from `dist/src/config` (compiled), which sit at different depths. The root is the
 * first directory holding both package.json and vm-templates/, so a package.json that the
 * compiler might copy into dist/ is not mistaken for it.
 */
export function findPackageRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'vm-templates'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`No package root (package.json next to vm-templates/) above ${start}`);
    dir = parent;
  }
}

export function defaultTemplatesDir(): string {
  return path.join(findPackageRoot(), 'vm-templates');
}

/** Names of the templates in a directory, sorted. */
export function listVmTemplates(dir: string = defaultTemplatesDir()): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .filter((name) => TEMPLATE_NAME.test(name))
    .sort();
}

export type TemplateLookup =
  | { readonly status: 'found'; readonly name: string; readonly file: string; readonly template: VmTemplate }
  | { readonly status: 'missing'; readonly name: string; readonly file: string; readonly available: readonly string[] }
  | { readonly status: 'invalid'; readonly name: string; readonly file: string; readonly diagnostics: readonly Diagnostic[] };

let templateJsonSchema: JsonSchemaNode | undefined;

function templateSchemaJson(): JsonSchemaNode {
  templateJsonSchema ??= z.toJSONSchema(VmTemplateSchema, { io: 'input' }) as JsonSchemaNode;
  return templateJsonSchema;
}

/** Parse a template file's text. Problems are CONFIG_TEMPLATE_INVALID diagnostics in that file. */
export function parseVmTemplate(text: string, file: string, name: string): { template?: VmTemplate; diagnostics: Diagnostic[] } {
  const parsed = parseYaml(text, file, 'CONFIG_TEMPLATE');
  if (!parsed.source || parsed.value === undefined) {
    return { diagnostics: parsed.diagnostics.map((d) => ({ ...d, message: `VM template "${name}": ${d.message}` })) };
  }
  const result = VmTemplateSchema.safeParse(parsed.value);
  if (result.success) return { template: result.data, diagnostics: parsed.diagnostics };
  return {
    diagnostics: [
      ...parsed.diagnostics,
      ...issuesToDiagnostics(result.error.issues, {
        source: parsed.source,
        data: parsed.value,
        schema: templateSchemaJson(),
        fixedCode: 'CONFIG_TEMPLATE_INVALID',
        messagePrefix: `VM template "${name}": `,
      }),
    ],
  };
}

/** Find and parse `<dir>/<name>.yaml`. */
export function loadVmTemplate(name: string, dir: string = defaultTemplatesDir()): TemplateLookup {
  const file = path.join(dir, `${name}.yaml`);
  if (!TEMPLATE_NAME.test(name)) return { status: 'missing', name, file, available: listVmTemplates(dir) };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { status: 'missing', name, file, available: listVmTemplates(dir) };
  }
  const parsed = parseVmTemplate(text, file, name);
  if (parsed.template && !parsed.diagnostics.some((d) => d.severity === 'error')) {
    return { status: 'found', name, file, template: parsed.template };
  }
  return { status: 'invalid', name, file, diagnostics: parsed.diagnostics };
}
