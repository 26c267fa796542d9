// A simulated OPNsense nano VM on the serial console, for the Proxmox double's termproxy. It plays
// what opnsense/core 26.7.2 prints (CONSOLE.md): firmware and kernel lines, the config importer
// (`opnsense-importer -b`: prompt, seven dots one per `dotMs`, device list, device question,
// import messages), the boot, the banner with the HTTPS and SSH fingerprints, getty's login, the
// console menu and a shell that knows `opnsense-importer` and `reboot`. Its disk keeps
// /conf/config.xml across reboots: the importer appears only while it is absent (first boot).
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { IsoVolume } from './iso-reader';
import type { GuestTerminal, SerialConnection, SerialGuest } from './console';

export interface GuestTiming {
  /** Power on → kernel (SeaBIOS, loader). */
  firmwareMs: number;
  /** Kernel → importer prompt. */
  kernelMs: number;
  /** One importer dot (real: 1 s). */
  dotMs: number;
  /** Key pressed → device list (zfs_load sleeps 1 s). */
  probeMs: number;
  /** Device chosen → "Restoring config.xml...done." */
  importMs: number;
  /** Importer done → login prompt (services, web GUI). */
  servicesMs: number;
  /** With an empty disk: SeaBIOS's pause before it tries to boot again (real: 60 s). */
  noBootRetryMs: number;
}

export const FAST_BOOT: GuestTiming = { firmwareMs: 20, kernelMs: 30, dotMs: 120, probeMs: 20, importMs: 20, servicesMs: 40, noBootRetryMs: 300 };

/** A medium the VM's config attaches (`ide2: local:iso/x.iso,media=cdrom`), as FreeBSD names it. */
export interface GuestMedium {
  readonly device: string;
  readonly bytes?: Buffer;
}

export interface OpnsenseGuestOptions {
  timing?: Partial<GuestTiming>;
  version?: string;
  /** SHA-256 fingerprint of the web GUI certificate, "AA:BB:…" (the banner shows it). */
  httpsFingerprint: string;
  /** SSH host key fingerprints shown in the banner when SSH is on. */
  sshFingerprints?: readonly { type: string; fingerprint: string }[];
  /** Print line noise (bytes a serial line picks up) during the boot and before the login. */
  noise?: boolean;
  /** The VM's CD devices and their media, read at the moment the importer looks. */
  media(): GuestMedium[];
  /**
   * The bytes of the VM's boot disk, read at each power-on (undefined: an empty disk). SeaBIOS
   * boots it only when its first sector ends in the MBR signature 55 AA; otherwise it finds
   * nothing to boot and says so. Without this option the disk holds the nano image.
   */
  bootDisk?(): Buffer | undefined;
  /** Disk devices (the nano image itself is da0, MBR with a UFS slice). */
  disks?(): string[];
  /** The boot finished: the web GUI and API answer from now on with this config. */
  onBooted?(config: string | undefined): void;
  onPowerOff?(): void;
}

type Phase = 'off' | 'firmware' | 'kernel' | 'importer-prompt' | 'importer-device' | 'booting' | 'login' | 'password' | 'menu' | 'shell';

class PoweredOff extends Error {}

const NOISE = Buffer.from([0x00, 0xff, 0xfe, 0x1b, 0x5b, 0x3f, 0x32, 0x35, 0x6c, 0x07, 0xc3, 0x28, 0x7f, 0x0e, 0x1b, 0x63, 0xa0, 0x01, 0x0d]);

function verifyCrypt(password: string, hash: string): boolean {
  const m = /^\$6\$(?:rounds=\d+\$)?([^$]*)\$/.exec(hash);
  if (!m) return false;
  const r = spawnSync('openssl', ['passwd', '-6', '-salt', m[1]!, '-stdin'], { input: `${password}\n`, encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === hash;
}

/** SeaBIOS boot.c boot_disk: the first sector must end in 0x55 0xAA. */
export function hasBootSignature(disk: Buffer | undefined): boolean {
  return !!disk && disk.length >= 512 && disk[510] === 0x55 && disk[511] === 0xaa;
}

export class OpnsenseGuest implements SerialGuest {
  readonly events = new EventEmitter();
  /** /conf/config.xml on the VM's disk; undefined until the first boot writes one. */
  config: string | undefined;
  /** True once the factory config was bootstrapped instead of an import. */
  factory = false;
  phase: Phase = 'off';
  /** Everything the guest printed, connected or not. */
  transcript = '';
  /** Boots so far. */
  boots = 0;
  private readonly t: GuestTiming;
  private term: GuestTerminal | undefined;
  private generation = 0;
  private input: number[] = [];
  private wake: (() => void) | undefined;
  private timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: OpnsenseGuestOptions) {
    this.t = { ...FAST_BOOT, ...opts.timing };
  }

  // ---- SerialGuest -------------------------------------------------------------------------------

  connect(term: GuestTerminal): SerialConnection {
    this.term = term;
    return {
      input: (d) => {
        this.input.push(...d);
        this.wake?.();
      },
      disconnect: () => {
        if (this.term === term) this.term = undefined;
      },
    };
  }

  power(on: boolean): void {
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.input = [];
    this.wake?.();
    if (!on) {
      this.setPhase('off');
      this.opts.onPowerOff?.();
      return;
    }
    const gen = this.generation;
    this.run(gen).catch((e: unknown) => {
      if (!(e instanceof PoweredOff)) this.events.emit('error', e);
    });
  }

  /** Resolves when the guest reaches the phase (tests); rejects after `timeoutMs`. */
  until(phase: Phase, timeoutMs = 10_000): Promise<void> {
    if (this.phase === phase) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('phase', on);
        reject(new Error(`guest did not reach ${phase} within ${timeoutMs} ms (now ${this.phase})`));
      }, timeoutMs);
      const on = (p: Phase) => {
        if (p !== phase) return;
        clearTimeout(timer);
        this.events.off('phase', on);
        resolve();
      };
      this.events.on('phase', on);
    });
  }

  // ---- primitives --------------------------------------------------------------------------------

  private setPhase(p: Phase): void {
    this.phase = p;
    this.events.emit('phase', p);
  }

  private out(text: string | Buffer): void {
    const b = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
    this.transcript += b.toString('latin1');
    this.term?.write(b);
  }

  private line(text = ''): void {
    this.out(`${text}\r\n`);
  }

  private check(gen: number): void {
    if (gen !== this.generation) throw new PoweredOff();
  }

  private pause(gen: number, ms: number): Promise<void> {
    this.check(gen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (gen !== this.generation) reject(new PoweredOff());
        else resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  /** Waits for input or power-off; `timeoutMs` undefined waits without limit. */
  private waitInput(gen: number, timeoutMs?: number): Promise<boolean> {
    this.check(gen);
    if (this.input.length) return Promise.resolve(true);
    return new Promise((resolve, reject) => {
      let t: NodeJS.Timeout | undefined;
      this.wake = () => {
        this.wake = undefined;
        if (t) {
          clearTimeout(t);
          this.timers.delete(t);
        }
        if (gen !== this.generation) reject(new PoweredOff());
        else resolve(true);
      };
      if (timeoutMs !== undefined) {
        t = setTimeout(() => {
          this.timers.delete(t!);
          this.wake = undefined;
          resolve(false);
        }, timeoutMs);
        this.timers.add(t);
      }
    });
  }

  /** cbreak, no echo: one key within the time, as `timeout 1 dd count=1`. */
  private async readKey(gen: number, timeoutMs: number): Promise<boolean> {
    if (!(await this.waitInput(gen, timeoutMs))) return false;
    this.input.shift();
    return true;
  }

  /** Canonical mode: a line ended by CR or LF (ICRNL), with echo and backspace. */
  private async readLine(gen: number, echo: boolean): Promise<string> {
    let line = '';
    for (let guard = 0; guard < 100_000; guard++) {
      await this.waitInput(gen);
      while (this.input.length) {
        const b = this.input.shift()!;
        if (b === 0x0d || b === 0x0a) {
          // A CR LF pair from the client is one end of line.
          if (b === 0x0d && this.input[0] === 0x0a) this.input.shift();
          if (echo) this.out('\r\n');
          return line;
        }
        if (b === 0x7f || b === 0x08) {
          if (line.length) {
            line = line.slice(0, -1);
            if (echo) this.out('\b \b');
          }
          continue;
        }
        if (b < 0x20) continue;
        const ch = String.fromCharCode(b);
        line += ch;
        if (echo) this.out(ch);
      }
    }
    return line;
  }

  // ---- the machine -------------------------------------------------------------------------------

  private get hostname(): string {
    const h = /<hostname>([^<]*)<\/hostname>/.exec(this.config ?? '')?.[1] ?? 'OPNsense';
    const d = /<domain>([^<]*)<\/domain>/.exec(this.config ?? '')?.[1] ?? 'internal';
    return `${h}.${d}`;
  }

  private rootPasswordOk(pw: string): boolean {
    if (!this.config || this.factory) return pw === 'opnsense';
    const root = /<user>(?:(?!<\/user>)[\s\S])*?<name>root<\/name>(?:(?!<\/user>)[\s\S])*?<\/user>/.exec(this.config)?.[0] ?? '';
    const hash = /<password>([^<]*)<\/password>/.exec(root)?.[1] ?? '';
    if (hash.startsWith('$2y$10$YRVoF4SgskIsrXOvOQjGieB9XqHPRra9R7d80B3BZdbY/j21TwBfS')) return pw === 'opnsense';
    return verifyCrypt(pw, hash);
  }

  private async run(gen: number): Promise<void> {
    this.boots++;
    this.setPhase('firmware');
    if (this.opts.noise) this.out(NOISE);
    this.line('SeaBIOS (version 1.16.3)');
    this.line('Booting from Hard Disk...');
    await this.pause(gen, this.t.firmwareMs);
    if (this.opts.bootDisk && !hasBootSignature(this.opts.bootDisk())) {
      // (inferred) SeaBIOS boot.c: the disk has no MBR boot code, the seed CD no El Torito record
      this.line('Boot failed: not a bootable disk');
      this.line('');
      this.line('Booting from DVD/CD...');
      this.line('Boot failed: Could not read from CDROM (code 0004)');
      this.line('');
      for (let retry = 0; retry < 10_000; retry++) {
        this.line('No bootable device.  Retrying in 60 seconds.');
        await this.pause(gen, this.t.noBootRetryMs);
        this.line('Booting from Hard Disk...');
        this.line('Boot failed: not a bootable disk');
      }
      return;
    }
    this.setPhase('kernel');
    this.line('Consoles: internal video/keyboard  serial port');
    this.line('/boot/kernel/kernel text=0x1a2b3c data=0x1d4e5f');
    this.line('---<<BOOT>>---');
    this.line('Copyright (c) 1992-2026 The FreeBSD Project.');
    this.line('FreeBSD 14.3-RELEASE-p2 amd64');
    for (const m of this.opts.media()) this.line(`${m.device} at ahcich0 bus 0 scbus1 target 0 lun 0`);
    this.line('da0 at vtscsi0 bus 0 scbus2 target 0 lun 0');
    if (this.opts.noise) this.out(NOISE);
    this.line('Mounting filesystems...');
    await this.pause(gen, this.t.kernelMs);

    if (!this.config) {
      this.setPhase('importer-prompt');
      this.out('Press any key to start the configuration importer: ');
      let pressed = false;
      for (let i = 0; i < 7 && !pressed; i++) {
        this.out('.');
        pressed = await this.readKey(gen, this.t.dotMs);
      }
      this.line();
      if (pressed) await this.importer(gen, true);
      if (!this.config) {
        this.out('Bootstrapping config.xml...');
        this.config = '<!-- factory -->';
        this.factory = true;
        this.line('done.');
      }
    }

    this.setPhase('booting');
    this.line('Configuring system...');
    this.line('>>> Invoking start script \'beep\'');
    if (this.opts.noise) this.out(NOISE);
    await this.pause(gen, this.t.servicesMs);
    this.opts.onBooted?.(this.factory ? undefined : this.config);
    await this.getty(gen);
  }

  private devlist(): string[] {
    const lines: string[] = [];
    let pass = 0;
    for (const d of this.opts.disks?.() ?? ['da0']) lines.push(`<QEMU QEMU HARDDISK 2.5+>          at scbus2 target 0 lun 0 (pass${pass++},${d})`);
    for (const m of this.opts.media()) lines.push(`<QEMU QEMU DVD-ROM 2.5+>            at scbus1 target 0 lun 0 (${m.device},pass${pass++})`);
    return lines;
  }

  /** opnsense-importer: the device loop (26.7.2 src/sbin/opnsense-importer). */
  private async importer(gen: number, boot: boolean): Promise<void> {
    await this.pause(gen, this.t.probeMs);
    for (let round = 0; round < 50; round++) {
      this.setPhase('importer-device');
      this.line();
      for (const l of this.devlist()) this.line(l);
      this.line();
      this.out('Select device to import from (e.g. ada0) or leave blank to exit: ');
      const dev = (await this.readLine(gen, true)).trim();
      this.line();
      if (dev === '') return;
      const medium = this.opts.media().find((m) => m.device === dev);
      const disk = (this.opts.disks?.() ?? ['da0']).includes(dev);
      if (!medium && !disk) {
        this.line(`No known partition layout was found for '${dev}'.`);
        continue;
      }
      const part = disk ? `/dev/${dev}s1a` : `/dev/${dev}`;
      this.line(`Starting import for partition '${part}'.`);
      this.line();
      let xml: string | undefined;
      if (disk) {
        this.out('Running fsck...');
        this.line('done.');
        xml = this.factory ? undefined : this.config;
      } else {
        let vol: IsoVolume | undefined;
        try {
          vol = medium!.bytes ? new IsoVolume(medium!.bytes) : undefined;
        } catch {
          vol = undefined;
        }
        if (!vol) this.line('The device could not be mounted.');
        xml = vol?.read('conf/config.xml')?.toString('utf8');
      }
      await this.pause(gen, this.t.importMs);
      if (xml === undefined) {
        this.line('The file /conf/config.xml could not be found.');
        continue;
      }
      this.out('Restoring config.xml...');
      this.config = xml;
      this.factory = false;
      this.line('done.');
      if (!boot) this.line('Please reboot.');
      return;
    }
  }

  private banner(): void {
    const x = this.factory ? '' : (this.config ?? '');
    const iface = (name: string) => new RegExp(`<${name}>(?:(?!</${name}>)[\\s\\S])*?<if>([^<]*)</if>(?:(?!</${name}>)[\\s\\S])*?<ipaddr>([^<]*)</ipaddr>`).exec(x);
    const version = this.opts.version ?? '26.7';
    this.line();
    this.line(`*** ${this.hostname}: OPNsense ${version} ***`);
    this.line();
    const lan = iface('lan');
    const wan = iface('wan');
    if (lan) this.line(` LAN (${lan[1]})${' '.repeat(Math.max(1, 10 - lan[1]!.length))}-> v4: ${lan[2]}/24`);
    if (wan) this.line(` WAN (${wan[1]})${' '.repeat(Math.max(1, 10 - wan[1]!.length))}-> v4/DHCP4: 203.0.113.50/24`);
    this.line();
    const pairs = this.opts.httpsFingerprint.split(':');
    this.line(` HTTPS: SHA256 ${pairs.slice(0, 16).join(' ')}`);
    this.line(`               ${pairs.slice(16).join(' ')}`);
    if (/<ssh>(?:(?!<\/ssh>)[\s\S])*<enabled>enabled<\/enabled>/.test(x)) {
      for (const k of this.opts.sshFingerprints ?? []) this.line(` SSH:   SHA256 ${k.fingerprint.replace(/^SHA256:/, '')} (${k.type})`);
    }
    this.line();
  }

  private async getty(gen: number): Promise<void> {
    for (let session = 0; session < 1000; session++) {
      if (this.opts.noise) this.out(NOISE);
      this.banner();
      this.line(`FreeBSD/amd64 (${this.hostname}) (ttyu0)`);
      this.line();
      for (let attempt = 0; ; attempt++) {
        this.setPhase('login');
        this.out('login: ');
        const user = (await this.readLine(gen, true)).trim();
        if (!user) continue;
        this.setPhase('password');
        this.out('Password:');
        const pw = await this.readLine(gen, false);
        this.line();
        if (user === 'root' && this.rootPasswordOk(pw)) break;
        this.line('Login incorrect');
      }
      const next = await this.menu(gen);
      if (next === 'reboot') {
        this.line('Shutdown NOW!');
        this.line('Rebooting...');
        this.power(true);
        throw new PoweredOff();
      }
    }
  }

  private async menu(gen: number): Promise<'logout' | 'reboot'> {
    for (let guard = 0; guard < 1000; guard++) {
      this.setPhase('menu');
      this.banner();
      this.line('  0) Logout                              7) Ping host');
      this.line('  1) Assign interfaces                   8) Shell');
      this.line('  2) Set interface IP address            9) pfTop');
      this.line('  3) Reset the root password            10) Firewall log');
      this.line('  4) Reset to factory defaults          11) Reload all services');
      this.line('  5) Power off system                   12) Update from console');
      this.line('  6) Reboot system                      13) Restore a backup');
      this.line();
      this.out('Enter an option: ');
      const opt = (await this.readLine(gen, true)).trim();
      this.line();
      if (opt === '0') return 'logout';
      if (opt === '6') return 'reboot';
      if (opt === '8') {
        const r = await this.shell(gen);
        if (r === 'reboot') return 'reboot';
      }
    }
    return 'logout';
  }

  private async shell(gen: number): Promise<'exit' | 'reboot'> {
    for (let guard = 0; guard < 1000; guard++) {
      this.setPhase('shell');
      this.out(`root@${this.hostname.split('.')[0]}:~ # `);
      const cmd = (await this.readLine(gen, true)).trim();
      if (cmd === '') continue;
      if (cmd === 'exit') return 'exit';
      if (cmd === 'reboot') return 'reboot';
      const argv = cmd.split(/\s+/);
      if (argv[0] === 'opnsense-importer') {
        if (argv[1]) {
          // With a device: no questions (DO_DEV).
          this.input.push(...Buffer.from(`${argv[1]}\r`));
        }
        await this.importer(gen, false);
        continue;
      }
      this.line(`${argv[0]}: Command not found.`);
    }
    return 'exit';
  }
}
