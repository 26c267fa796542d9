// ACLs and permission checks, following pve-access-control src/PVE/RPCEnvironment.pm
// (check, check_any, exec_api2_perm_check, check_api2_permissions) and AccessControl.pm roles():
// walking from "/" to the checked path, an ACL entry on a level applies when it is on the final
// level or propagates, and it REPLACES what was inherited from above. The double keeps one ACL
// entry (a privilege set + propagate flag) per token and path instead of roles.
import type { MethodInfo } from './data';

export class PermissionDenied extends Error {
  readonly text: string;
  constructor(what?: string) {
    const text = `Permission check failed${what ? ` (${what})` : ''}\n`;
    super(text.trimEnd());
    this.text = text;
    this.name = 'PermissionDenied';
  }
}

interface AclEntry {
  privs: Set<string>;
  propagate: boolean;
}

export interface TokenRecord {
  /** USER@REALM!TOKENID */
  id: string;
  secret: string;
  acl: Map<string, AclEntry>;
}

export const ROOT = 'root@pam';

export function normalizeAclPath(p: string): string {
  let s = `/${p}`.replace(/\/+/g, '/');
  if (s.length > 1) s = s.replace(/\/$/, '');
  return s;
}

export class AccessControl {
  readonly tokens = new Map<string, TokenRecord>();

  addToken(id: string, secret: string): TokenRecord {
    const t: TokenRecord = { id, secret, acl: new Map() };
    this.tokens.set(id, t);
    return t;
  }

  grant(tokenId: string, path: string, privs: string[], propagate = true): void {
    const t = this.token(tokenId);
    const p = normalizeAclPath(path);
    const e = t.acl.get(p) ?? { privs: new Set<string>(), propagate };
    for (const x of privs) e.privs.add(x);
    e.propagate = propagate;
    t.acl.set(p, e);
  }

  /** Removes privileges from the ACL entry on `path`; without `privs` the whole entry goes. */
  revoke(tokenId: string, path: string, privs?: string[]): void {
    const t = this.token(tokenId);
    const p = normalizeAclPath(path);
    const e = t.acl.get(p);
    if (!e) return;
    if (!privs) t.acl.delete(p);
    else {
      for (const x of privs) e.privs.delete(x);
      if (e.privs.size === 0) t.acl.delete(p);
    }
  }

  private token(id: string): TokenRecord {
    const t = this.tokens.get(id);
    if (!t) throw new Error(`proxmox double: unknown token '${id}'`);
    return t;
  }

  /** privilege -> propagate flag (1/0) effective on `path` for `user` */
  permissions(user: string, path: string): Record<string, 0 | 1> {
    if (user === ROOT) return Object.fromEntries(ALL_PRIVS.map((p) => [p, 1 as const]));
    const t = this.tokens.get(user);
    if (!t) return {};
    const norm = normalizeAclPath(path);
    const levels = norm === '/' ? ['/'] : ['/', ...norm.split('/').filter(Boolean).map((_, i, a) => `/${a.slice(0, i + 1).join('/')}`)];
    let current: Record<string, 0 | 1> = {};
    levels.forEach((lvl, i) => {
      const e = t.acl.get(lvl);
      if (!e) return;
      const final = i === levels.length - 1;
      if (final || e.propagate) current = Object.fromEntries([...e.privs].map((p) => [p, e.propagate ? 1 : 0]));
    });
    return current;
  }

  check(user: string, path: string, privs: string[], noerr = false): boolean {
    const perm = this.permissions(user, path);
    for (const p of privs) {
      if (perm[p] === undefined) {
        if (noerr) return false;
        throw new PermissionDenied(`${path}, ${p}`);
      }
    }
    return true;
  }

  checkAny(user: string, path: string, privs: string[], noerr = false): boolean {
    const perm = this.permissions(user, path);
    if (privs.some((p) => perm[p] !== undefined)) return true;
    if (noerr) return false;
    throw new PermissionDenied(`${path}, ${privs.join('|')}`);
  }

  checkFull(user: string, path: string, privs: string[], any: boolean, noerr = false): boolean {
    return any ? this.checkAny(user, path, privs, noerr) : this.check(user, path, privs, noerr);
  }

  /** exec_api2_perm_check for the expressions the schema uses: and / or / perm / userid-param */
  execCheck(check: unknown[], user: string, params: Record<string, unknown>, noerr = false): boolean {
    const test = check[0];
    if (test === 'and') {
      for (const sub of check.slice(1)) this.execCheck(sub as unknown[], user, params);
      return true;
    }
    if (test === 'or') {
      for (const sub of check.slice(1)) if (this.execCheck(sub as unknown[], user, params, true)) return true;
      if (noerr) return false;
      throw new PermissionDenied();
    }
    if (test === 'perm') {
      const [, tmpl, privs, ...rest] = check as [string, string, string[], ...unknown[]];
      const opts: Record<string, unknown> = {};
      for (let i = 0; i + 1 < rest.length; i += 2) opts[String(rest[i])] = rest[i + 1];
      const req = opts.require_param as string | undefined;
      if (req && params[req] === undefined) {
        if (noerr) return false;
        throw new PermissionDenied();
      }
      const path = normalizeAclPath(tmpl.replace(/\{(\w+)\}/g, (_, n: string) => String(params[n] ?? '')));
      return this.checkFull(user, path, privs, !!opts.any, noerr);
    }
    if (test === 'userid-param') {
      const userid = String(params.userid ?? '');
      if (check[1] === 'self') {
        if (user === userid) return true;
        if (noerr) return false;
        throw new PermissionDenied();
      }
      const realm = userid.split('@')[1] ?? '';
      return this.check(user, `/access/realm/${realm}`, ['Realm.AllocateUser'], noerr);
    }
    throw new Error(`proxmox double: permission test '${String(test)}' not implemented`);
  }

  /** check_api2_permissions */
  checkApi2(info: MethodInfo, user: string, params: Record<string, unknown>): void {
    if (user === ROOT) return;
    const perm = info.permissions;
    if (!perm) throw new PermissionDenied('user != root@pam');
    if (perm.user === 'all' || perm.user === 'world') return;
    if (perm.check) {
      this.execCheck(perm.check, user, params);
      return;
    }
    throw new PermissionDenied();
  }

  /** get_effective_permissions: the default top-level paths plus every path with an ACL entry */
  effectivePermissions(user: string): Record<string, Record<string, 0 | 1>> {
    const paths = new Set(['/', '/access', '/access/groups', '/nodes', '/pool', '/sdn', '/storage', '/vms']);
    const t = this.tokens.get(user);
    if (t) for (const p of t.acl.keys()) paths.add(p);
    const out: Record<string, Record<string, 0 | 1>> = {};
    for (const p of [...paths].sort()) {
      const perms = this.permissions(user, p);
      if (Object.keys(perms).length) out[p] = Object.fromEntries(Object.keys(perms).sort().map((k) => [k, perms[k]!]));
    }
    return out;
  }
}

/** Privileges of the built-in Administrator role (PVE 9), what root@pam effectively has. */
export const ALL_PRIVS = [
  'Datastore.Allocate',
  'Datastore.AllocateSpace',
  'Datastore.AllocateTemplate',
  'Datastore.Audit',
  'Group.Allocate',
  'Mapping.Audit',
  'Mapping.Modify',
  'Mapping.Use',
  'Permissions.Modify',
  'Pool.Allocate',
  'Pool.Audit',
  'Realm.Allocate',
  'Realm.AllocateUser',
  'SDN.Allocate',
  'SDN.Audit',
  'SDN.Use',
  'Sys.AccessNetwork',
  'Sys.Audit',
  'Sys.Console',
  'Sys.Incoming',
  'Sys.Modify',
  'Sys.PowerMgmt',
  'Sys.Syslog',
  'User.Modify',
  'VM.Allocate',
  'VM.Audit',
  'VM.Backup',
  'VM.Clone',
  'VM.Config.CDROM',
  'VM.Config.CPU',
  'VM.Config.Cloudinit',
  'VM.Config.Disk',
  'VM.Config.HWType',
  'VM.Config.Memory',
  'VM.Config.Network',
  'VM.Config.Options',
  'VM.Console',
  'VM.GuestAgent.Audit',
  'VM.GuestAgent.FileRead',
  'VM.GuestAgent.FileSystemMgmt',
  'VM.GuestAgent.FileWrite',
  'VM.GuestAgent.Unrestricted',
  'VM.Migrate',
  'VM.Monitor',
  'VM.PowerMgmt',
  'VM.Replicate',
  'VM.Snapshot',
  'VM.Snapshot.Rollback',
];
