import { encodeInput, encodeResize } from '../../../src/bootstrap/console';
import { cdDevices, parseBanner } from '../../../src/bootstrap/dialogue';
import { cleanConsoleText, Expect, ExpectError, Screen, type ConsoleIo } from '../../../src/bootstrap/expect';

function fakeIo(): ConsoleIo & { emit(t: string): void; end(r: string): void; sent: string[] } {
  let data: (t: string) => void = () => undefined;
  let close: (r: string) => void = () => undefined;
  const sent: string[] = [];
  return {
    sent,
    send: (t) => sent.push(t),
    onData: (l) => (data = l),
    onClose: (l) => (close = l),
    emit: (t) => data(t),
    end: (r) => close(r),
  };
}

describe('console text and screen', () => {
  it('drops ANSI sequences, control characters and undecodable bytes; CR LF becomes LF', () => {
    expect(cleanConsoleText('\x1b[2J\x1b[Hlog\x00in\ufffd: \x1b]0;title\x07x\r\n')).toBe('login: x\n');
  });

  it('keeps what a person would see: CR overwrites, BS steps back', () => {
    const s = new Screen();
    s.write('Password:\r\nabc\b\bX\r\nprogress 10%\rprogress 99%\r\n\r\n');
    expect(s.lastLines()).toEqual(['Password:', 'aXc', 'progress 99%']);
  });

  it('frames termproxy messages with the UTF-8 byte length', () => {
    expect(encodeInput('é\r')).toBe('0:3:é\r');
    expect(encodeResize(80.7, 24)).toBe('1:80:24:');
  });
});

describe('Expect', () => {
  it('waits for output, picks the earliest match, consumes through it', async () => {
    const io = fakeIo();
    const x = new Expect(io);
    const p = x.expect('step', [{ name: 'b', re: /bbb/ }, { name: 'a', re: /aaa/ }], 1_000);
    io.emit('noise aaa then bbb');
    const hit = await p;
    expect([hit.name, hit.before]).toEqual(['a', 'noise ']);
    expect((await x.expect('next', [{ name: 'b', re: /bbb/ }], 1_000)).before).toBe(' then ');
  });

  it('matches a prompt split over chunks and garbage around it', async () => {
    const io = fakeIo();
    const x = new Expect(io);
    const p = x.expect('login', [{ name: 'login', re: /(?:^|\n)login: / }], 1_000);
    io.emit('\xff\x00FreeBSD/amd64 (opnsense.internal) (ttyu0)\r\n\r\nlog');
    io.emit('in: ');
    await expect(p).resolves.toMatchObject({ name: 'login' });
  });

  it('times out with the step, what it waited for, and the last screen lines', async () => {
    const io = fakeIo();
    const x = new Expect(io, { screenLines: 2 });
    io.emit('line 1\r\nline 2\r\nline 3\r\n');
    const err = await x.expect('wait for the importer', [{ name: 'importer', re: /Press any key/ }], 50).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExpectError);
    expect((err as ExpectError).code).toBe('CONSOLE_TIMEOUT');
    expect((err as Error).message).toBe('Console step "wait for the importer" saw none of "importer" within 0 s.\n  last lines on the console:\n    | line 2\n    | line 3');
  });

  it('fails at once when the console closes', async () => {
    const io = fakeIo();
    const x = new Expect(io);
    const p = x.expect('login', [{ name: 'login', re: /login: / }], 10_000);
    io.emit('VM 100 not running\r\n');
    io.end('closed (1000)');
    const err = (await p.catch((e: unknown) => e)) as ExpectError;
    expect(err.code).toBe('CONSOLE_CLOSED');
    expect(err.screen).toEqual(['VM 100 not running']);
  });
});

describe('what the console shows', () => {
  it('reads the HTTPS fingerprint (two lines, as banner.php splits it) and the SSH host keys', () => {
    const banner = [
      '*** opnsense.internal: OPNsense 26.7 ***',
      '',
      ' HTTPS: SHA256 19 A8 83 86 42 4E 75 3C DC 0D AB C0 6F BC 54 91',
      '               22 ED E8 BB A1 B1 85 E3 A1 80 E5 15 89 9C 99 BC',
      ' SSH:   SHA256 HpmbGXeyvNKd7Hyc4sx+FTR6pL0wytIIVAWDuVrDZMc (ECDSA)',
      ' SSH:   SHA256 p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8 (ED25519)',
    ].join('\n');
    expect(parseBanner(banner)).toEqual({
      httpsFingerprint: '19:A8:83:86:42:4E:75:3C:DC:0D:AB:C0:6F:BC:54:91:22:ED:E8:BB:A1:B1:85:E3:A1:80:E5:15:89:9C:99:BC',
      sshHostKeys: [
        { type: 'ECDSA', fingerprint: 'SHA256:HpmbGXeyvNKd7Hyc4sx+FTR6pL0wytIIVAWDuVrDZMc' },
        { type: 'ED25519', fingerprint: 'SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8' },
      ],
    });
    expect(parseBanner(' HTTPS: sha256 6f db').httpsFingerprint).toBeUndefined();
  });

  it('finds the CD devices in camcontrol devlist', () => {
    const list = '<QEMU QEMU HARDDISK 2.5+>   at scbus2 target 0 lun 0 (pass0,da0)\n<QEMU QEMU DVD-ROM 2.5+>    at scbus1 target 0 lun 0 (cd0,pass1)\n<QEMU DVD 2>  at scbus3 target 0 lun 0 (pass2,cd1)\n';
    expect(cdDevices(list)).toEqual(['cd0', 'cd1']);
  });
});
