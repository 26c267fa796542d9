import { doctorExitCode, runDoctor, type Finding } from '../../doctor/run';
import { redact } from '../../secrets/redact';
import type { GlobalOptions } from '../options';
import { terminalUi } from '../session';

interface DoctorOptions extends GlobalOptions {
  readonly config: string;
  readonly json?: boolean;
  readonly trustOnFirstUse?: boolean;
  /** false with --no-lan-checks */
  readonly lanChecks?: boolean;
}

const MARK: Record<Finding['status'], string> = { ok: '✔', warn: '⚠', fail: '✖', skipped: '–' };

export async function doctorCommand(o: DoctorOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const ui = terminalUi(o);
  const findings = await runDoctor({ file: o.config, ui, env, credentialsFile: o.credentials, trustOnFirstUse: !!o.trustOnFirstUse, lan: o.lanChecks === false ? 'off' : 'auto' });
  const n = (s: Finding['status']) => findings.filter((f) => f.status === s).length;
  const exitCode = doctorExitCode(findings);
  if (o.json) {
    const summary = { ok: n('ok'), warn: n('warn'), fail: n('fail'), skipped: n('skipped') };
    process.stdout.write(`${redact(JSON.stringify({ findings, summary, exitCode }, null, 2))}\n`);
  } else {
    let area = '';
    for (const f of findings) {
      if (f.area !== area) {
        area = f.area;
        process.stdout.write(`\n${area}\n`);
      }
      process.stdout.write(redact(`  ${MARK[f.status]} ${f.check}: ${f.message}\n${f.remedy && f.status !== 'ok' ? `      remedy: ${f.remedy}\n` : ''}`));
    }
    process.stdout.write(`\n${n('ok')} ok, ${n('warn')} warnings, ${n('fail')} failed, ${n('skipped')} skipped.\n`);
  }
  return exitCode;
}
