import { spawnSync } from 'node:child_process';
import { commandLine, displayArgv, quoteArg, ShellArgumentError, type Argv } from '../../../src/providers/linux/shell';

/** Hostile strings: shell metacharacters, quotes of every kind, expansions, control characters, unicode. */
const HOSTILE = [
  '',
  ' ',
  "'",
  "''",
  "it's",
  '"',
  '\\',
  '\\\'',
  "'\\''",
  '$HOME',
  '${HOME}',
  '$(id)',
  '`id`',
  'a;b',
  'a && b',
  'a || b',
  'a | b',
  'a > /tmp/x',
  '< /etc/passwd',
  '*',
  '?',
  '[a-z]',
  '~',
  '~root',
  '#comment',
  'a\nb',
  'a\tb',
  '\r',
  '!',
  '!!',
  '-n',
  '--',
  '%s',
  'héllo wörld ✓',
  '\u0001\u001b[31m',
  "'; rm -rf / #",
  'x'.repeat(4096),
];

/** Runs a command line through a real POSIX shell and returns the arguments printf received. */
function throughShell(line: string): string[] {
  const res = spawnSync('/bin/sh', ['-c', line], { encoding: 'utf8' });
  expect(res.status).toBe(0);
  return res.stdout.split('\0').slice(0, -1);
}

describe('quoteArg', () => {
  it('leaves plain words alone and quotes everything else', () => {
    expect(quoteArg('ip')).toBe('ip');
    expect(quoteArg('100.64.1.0/24')).toBe('100.64.1.0/24');
    expect(quoteArg('net.ipv4.ip_forward=1')).toBe('net.ipv4.ip_forward=1');
    expect(quoteArg('')).toBe("''");
    expect(quoteArg('a b')).toBe("'a b'");
    expect(quoteArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteArg('$(id)')).toBe("'$(id)'");
  });

  it('refuses a NUL byte, which no program can receive', () => {
    expect(() => quoteArg('a\0b')).toThrow(ShellArgumentError);
  });

  it.each(HOSTILE.map((h) => [JSON.stringify(h).slice(0, 40), h]))('round-trips %s through /bin/sh unchanged', (_name, hostile) => {
    expect(throughShell(commandLine(['printf', '%s\\0', hostile as string]))).toEqual([hostile]);
  });

  it('round-trips all of them at once, in order', () => {
    expect(throughShell(commandLine(['printf', '%s\\0', ...HOSTILE]))).toEqual(HOSTILE);
  });

  it('never lets an argument run a command', () => {
    const marker = `/tmp/dualwan-shell-test-${process.pid}`;
    const line = commandLine(['printf', '%s\\0', `$(touch ${marker})`, `\`touch ${marker}\``, `; touch ${marker}`, `' ; touch ${marker} ; '`]);
    throughShell(line);
    expect(spawnSync('test', ['-e', marker]).status).not.toBe(0);
  });
});

describe('commandLine', () => {
  it('needs a program', () => {
    expect(() => commandLine([''] as unknown as Argv)).toThrow(ShellArgumentError);
    expect(() => commandLine([] as unknown as Argv)).toThrow(ShellArgumentError);
  });

  it('puts environment assignments through env, checked by name, and the value quoted', () => {
    expect(commandLine(['ip', '-j', 'addr'], { env: { LC_ALL: 'C' } })).toBe('env LC_ALL=C ip -j addr');
    expect(throughShell(commandLine(['sh', '-c', 'printf "%s\\0" "$X"'], { env: { X: "$(id) 'q'" } }))).toEqual(["$(id) 'q'"]);
    expect(() => commandLine(['ip'], { env: { 'A;B': '1' } })).toThrow(ShellArgumentError);
    expect(() => commandLine(['ip'], { env: { '1A': '1' } })).toThrow(ShellArgumentError);
  });

  it('prefixes sudo non-interactively', () => {
    expect(commandLine(['sysctl', '-w', 'net.ipv4.ip_forward=1'], { sudo: true })).toBe('sudo -n -- sysctl -w net.ipv4.ip_forward=1');
    expect(commandLine(['ip'], { sudo: true, env: { LC_ALL: 'C' } })).toBe('sudo -n -- env LC_ALL=C ip');
  });

  it('quotes the program name too', () => {
    expect(commandLine(['/opt/my tools/x', 'a'])).toBe("'/opt/my tools/x' a");
  });
});

describe('displayArgv', () => {
  it('shows a pasteable command and does not throw on NUL', () => {
    expect(displayArgv(['ip', 'route', 'replace', 'default', 'via', '100.64.1.1'])).toBe('ip route replace default via 100.64.1.1');
    expect(displayArgv(['echo', 'a b'])).toBe("echo 'a b'");
    expect(displayArgv(['x\0y'])).toBe('"x\\u0000y"');
  });
});
