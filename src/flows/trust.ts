import * as fs from 'node:fs';
import { parseDocument } from 'yaml';
import { TlsPinError, TtyRequiredError } from '../core/errors';
import type { Ui } from '../core/ui';
import { isFingerprint, normaliseFingerprint, probeCertificate, type ConnectVia } from '../net/pinned-tls';

export interface TrustOptions {
  readonly system: 'Proxmox VE' | 'OPNsense';
  readonly host: string;
  readonly port: number;
  /** The fingerprint pinned in dualwan.yaml, if any. */
  readonly pinned?: string;
  /** Accept and pin the presented certificate without asking (non-interactive first contact). */
  readonly trustOnFirstUse: boolean;
  readonly ui: Ui;
  /** Where to record a newly pinned fingerprint: the config file and the key path inside it. */
  readonly record?: { file: string; keyPath: readonly string[] };
  /** A command that shows the fingerprint on the server itself, for the user to compare. */
  readonly compareWith: string;
  /** The path to the server when it is not TCP from here (see OpnsenseClientOptions.connectVia), and its words. */
  readonly via?: { readonly connect: ConnectVia; readonly text: string };
}

/**
 * First contact: show the certificate's fingerprint and ask before pinning it (or pin it when
 * --trust-on-first-use says so). Later contacts use the pin; a mismatch is refused by the pinned
 * connection itself.
 */
export async function ensurePinned(o: TrustOptions): Promise<string> {
  if (o.pinned) {
    if (!isFingerprint(o.pinned)) throw new TlsPinError(`The pinned fingerprint for ${o.system} is malformed: ${o.pinned}`, 'A SHA-256 fingerprint has 32 hex pairs separated by colons (AA:BB:…). Remove it to pin afresh on next contact.');
    return normaliseFingerprint(o.pinned);
  }
  const cert = await probeCertificate(o.host, o.port, 10_000, o.via?.connect);
  const fp = normaliseFingerprint(cert.fingerprint256);
  o.ui.notify({
    code: 'TLS_FIRST_CONTACT',
    level: 'info',
    text: `First contact with ${o.system} at ${o.host}:${o.port}${o.via ? ` ${o.via.text}` : ''}.\n  certificate: ${cert.subject}\n  issued by:   ${cert.issuer}\n  valid until: ${cert.validTo}\n  SHA-256:     ${fp}\nCompare it with \`${o.compareWith}\` on the server.`,
    data: { fingerprint: fp, subject: cert.subject },
  });
  if (!o.trustOnFirstUse) {
    let ok: boolean;
    try {
      ok = await o.ui.request({ code: 'TLS_TRUST', kind: 'confirm', message: `Pin this certificate for ${o.host}:${o.port}?`, default: false });
    } catch (e) {
      if (e instanceof TtyRequiredError) throw new TtyRequiredError(`pin the certificate of ${o.system} at ${o.host}:${o.port} (SHA-256 ${fp})`);
      throw e;
    }
    if (!ok) throw new TlsPinError(`The certificate of ${o.system} at ${o.host}:${o.port} was not trusted; nothing was sent to it.`, 'Check the fingerprint on the server and run again, or pin it yourself in dualwan.yaml.');
  }
  if (o.record) recordFingerprint(o.record.file, o.record.keyPath, fp);
  o.ui.notify({ code: 'TLS_PINNED', level: 'success', text: `Pinned ${fp}${o.record ? ` in ${o.record.file}` : ''}.` });
  return fp;
}

/** Writes the fingerprint into the YAML file, keeping the user's comments and layout. */
export function recordFingerprint(file: string, keyPath: readonly string[], fp: string): void {
  const doc = parseDocument(fs.readFileSync(file, 'utf8'));
  doc.setIn(keyPath, fp);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, doc.toString(), { mode: fs.statSync(file).mode & 0o777 });
  fs.renameSync(tmp, file);
}
