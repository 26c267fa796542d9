// dpinger over time in the OPNsense double (BEHAVIOR.md "dpinger over time"): statuses follow the
// probes' window on a clock the test drives; a block rule on the monitor IP starves the probes
// only once their pf state is killed; a pulled link loses every probe; force_down acts at once.
import { DpingerProcess, dpingerStatus, ManualClock, type DpingerParams } from './dpinger';
import { startOpnsenseDouble, type OpnsenseDouble } from './server';
import { rawCall } from './test-client';

const clock = new ManualClock();
let d: OpnsenseDouble;
beforeAll(async () => {
  d = await startOpnsenseDouble({ dpinger: { clock: clock.now } });
});
afterAll(async () => {
  await d.close();
});

const call = (method: string, path: string, body?: unknown) => rawCall(d, method, path, { body });
type StatusItem = { name: string; status: string; loss: string };
const status = async (name: string) => ((await call('GET', '/api/routes/gateway/status')).json as { items: StatusItem[] }).items.find((i) => i.name === name)!;
/** Advances the clock second by second, asking the router each time, until `pred` holds; returns the seconds it took. */
async function secondsUntil(name: string, pred: (s: StatusItem) => boolean, max = 120): Promise<number> {
  for (let s = 0; s <= max; s++) {
    if (pred(await status(name))) return s;
    clock.advance(1_000);
  }
  throw new Error(`${name} never reached the state within ${max} s (now ${JSON.stringify(await status(name))})`);
}

async function monitored(): Promise<void> {
  d.reset();
  // fast-profile settings: a probe every 1 s, lost after 2 s, a 10 s window
  for (const [name, id, mon, prio] of [['WAN_DHCP', 'wan', '1.1.1.1', '10'], ['WAN2_DHCP', 'opt1', '9.9.9.9', '20']] as const) {
    const r = await call('POST', `/api/routing/settings/set_gateway/${name}`, {
      gateway_item: { name, interface: id, monitor_disable: '0', monitor: mon, priority: prio, interval: '1', loss_interval: '2', time_period: '10', losslow: '10', losshigh: '20' },
    });
    expect(r.json).toEqual({ result: 'saved' });
  }
  await call('POST', '/api/routing/settings/reconfigure', {});
  clock.advance(15_000); // a full window of answered probes
  expect(await status('WAN_DHCP')).toMatchObject({ status: 'none', loss: '0.0 %' });
}

const blockRule = { rule: { action: 'block', interface: '', direction: 'out', ipprotocol: 'inet', protocol: 'ICMP', icmptype: 'echoreq', source_net: 'any', destination_net: '1.1.1.1', description: 'block the probes' } };

describe('dpinger arithmetic', () => {
  const p: DpingerParams = { interval: 1, loss_interval: 2, time_period: 10, latencylow: 200, latencyhigh: 500, losslow: 10, losshigh: 20 };
  it('counts a probe lost only after loss_interval and reports integer loss over the window', () => {
    const proc = new DpingerProcess(p, 0);
    proc.advance(9_000, () => ({ lost: false, delayMs: 10 }));
    proc.advance(12_000, () => ({ lost: true, delayMs: 0 }));
    // probes at 10, 11, 12 s lost; at 12 s only the one sent at 10 s... none is older than 2 s yet
    expect(proc.report(12_000)).toMatchObject({ lost: 0, lossPercent: 0 });
    expect(proc.report(12_500)).toMatchObject({ lost: 1, lossPercent: 12 }); // 1·100 // 8
    expect(dpingerStatus({ lossPercent: 12, delayMs: 10 }, p)).toBe('loss');
    expect(dpingerStatus({ lossPercent: 21, delayMs: 10 }, p)).toBe('down');
    expect(dpingerStatus({ lossPercent: 20, delayMs: 10 }, p)).toBe('loss'); // above, not at, the threshold
    expect(dpingerStatus({ lossPercent: 0, delayMs: 501 }, p)).toBe('down');
  });
});

describe('the double, timed', () => {
  beforeEach(() => monitored());

  it('a block rule alone leaves the probes flowing through their pf state; killing that state starves them', async () => {
    expect((await call('POST', '/api/firewall/filter/add_rule', blockRule)).json).toMatchObject({ result: 'saved' });
    await call('POST', '/api/firewall/filter/apply', {});
    clock.advance(30_000);
    expect(await status('WAN_DHCP')).toMatchObject({ status: 'none' }); // the state still matches first
    const killed = (await call('POST', '/api/diagnostics/firewall/kill_states', { filter: '1.1.1.1' })).json as { dropped_states: number };
    expect(killed.dropped_states).toBe(1);
    const toLoss = await secondsUntil('WAN_DHCP', (s) => s.status !== 'none');
    const toDown = toLoss + (await secondsUntil('WAN_DHCP', (s) => s.status === 'down'));
    expect((await status('WAN_DHCP')).status).toBe('down');
    expect(toLoss).toBeGreaterThanOrEqual(2); // nothing is lost before loss_interval
    expect(toDown).toBeGreaterThanOrEqual(3);
    expect(toDown).toBeLessThanOrEqual(6);
    expect((await status('WAN2_DHCP')).status).toBe('none'); // the other WAN's probes go elsewhere
    const log = ((await call('POST', '/api/diagnostics/log/core/gateways', {})).json as { rows: { line: string }[] }).rows.map((r) => r.line);
    expect(log.some((l) => /WAN_DHCP .*Alarm: none -> loss/.test(l))).toBe(true);
    expect(log.some((l) => /WAN_DHCP .*Alarm: loss -> down/.test(l))).toBe(true);

    // remove the rule: the lost probes slide out of the window before it is Online again
    const rules = ((await call('POST', '/api/firewall/filter/search_rule', {})).json as { rows: { uuid: string; description: string }[] }).rows;
    await call('POST', `/api/firewall/filter/del_rule/${rules.find((r) => r.description === 'block the probes')!.uuid}`, {});
    await call('POST', '/api/firewall/filter/apply', {});
    const back = await secondsUntil('WAN_DHCP', (s) => s.status === 'none');
    expect(back).toBeGreaterThanOrEqual(5);
    expect(back).toBeLessThanOrEqual(10);
  });

  it('a pulled link loses every probe; plugged back in, it recovers over the window', async () => {
    d.setLinkHealth('wan', { up: false });
    const down = await secondsUntil('WAN_DHCP', (s) => s.status === 'down');
    expect(down).toBeGreaterThanOrEqual(3);
    expect(down).toBeLessThanOrEqual(6);
    d.setLinkHealth('wan', { up: true });
    expect((await status('WAN_DHCP')).status).toBe('down'); // not at once
    const back = await secondsUntil('WAN_DHCP', (s) => s.status === 'none');
    expect(back).toBeGreaterThanOrEqual(5);
  });

  it('force_down takes effect with the reconfigure, without waiting for dpinger', async () => {
    const rows = ((await call('POST', '/api/routing/settings/search_gateway', {})).json as { rows: { uuid: string; name: string }[] }).rows;
    const uuid = rows.find((r) => r.name === 'WAN_DHCP')!.uuid;
    await call('POST', `/api/routing/settings/set_gateway/${uuid}`, { gateway_item: { force_down: '1' } });
    expect((await status('WAN_DHCP')).status).toBe('none'); // saved, not applied
    await call('POST', '/api/routing/settings/reconfigure', {});
    expect(await status('WAN_DHCP')).toMatchObject({ status: 'force_down' });
    await call('POST', `/api/routing/settings/set_gateway/${uuid}`, { gateway_item: { force_down: '0' } });
    await call('POST', '/api/routing/settings/reconfigure', {});
    expect((await status('WAN_DHCP')).status).toBe('none');
  });

  it('lists the probes’ own pf states (ICMP from the WAN address to the monitor IP)', async () => {
    const rows = ((await call('POST', '/api/diagnostics/firewall/query_states', { searchPhrase: '9.9.9.9' })).json as { rows: Record<string, unknown>[] }).rows;
    expect(rows).toEqual([expect.objectContaining({ proto: 'icmp', src_addr: '192.168.43.20', dst_addr: '9.9.9.9', direction: 'out', gateway: null })]);
  });
});
