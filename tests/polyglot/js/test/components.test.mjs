// Runs the built components (not their sources) under Node: jco transpiles each .wasm in
// $SWITCHYARD_JS_OUT to JavaScript with the host interface mapped to harness/host.js.
// Run by tests/polyglot/js/test.sh OUTDIR after build.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const out = process.env.SWITCHYARD_JS_OUT;
const jco = process.env.SWITCHYARD_JCO;
assert.ok(out && jco, 'set SWITCHYARD_JS_OUT and SWITCHYARD_JCO (test.sh does)');

async function load(name) {
  const dir = join(out, '.transpiled', name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(new URL('../harness/host.js', import.meta.url), join(dir, 'host.js'));
  execFileSync(jco, ['transpile', join(out, `${name}.wasm`), '-o', dir, '--quiet', '--map', 'switchyard:plugin/host@0.2.0=./host.js']);
  const module = await import(join(dir, `${name}.js`));
  const { state } = await import(join(dir, 'host.js'));
  return { module, state };
}

const notification = (fields = {}) => ({
  id: 'ntf_1', kind: 'order.created', source: 'api', attributes: [['region', 'eu']],
  payload: '{"email":"a@example.com","phone":"+1","total":5}', createdAtMs: 1_700_000_000_000n, ...fields,
});
const context = { route: 'orders', channel: 'ops', attempt: 1 };

test('js-channel posts signed JSON and maps the answer', async () => {
  const { module, state } = await load('js-channel');
  assert.deepEqual(module.outbound.info(), { name: 'js-channel', version: '0.1.0', description: 'Posts each notification as signed JSON to config.url' });
  const key = Buffer.from('a test signing key');
  state.config = JSON.stringify({ url: 'https://hooks.example.com/in' });
  state.secrets = { signing_key: `whsec_${key.toString('base64')}` };
  state.fetch = () => ({ status: 202, headers: [], body: new Uint8Array() });
  const delivery = { notification: notification(), attempt: 2, channel: 'ops' };
  assert.deepEqual(module.outbound.deliver(delivery), { tag: 'delivered', val: { status: 202, detail: undefined } });
  const [sent] = state.requests;
  assert.equal(sent.method, 'POST');
  assert.equal(sent.url, 'https://hooks.example.com/in');
  const header = (n) => sent.headers.find(([k]) => k === n)?.[1];
  const body = Buffer.from(sent.body);
  assert.equal(JSON.parse(body).payload.total, 5);
  assert.equal(header('webhook-id'), 'ntf_1');
  assert.equal(header('webhook-timestamp'), '1700000000');
  const mac = createHmac('sha256', key).update(`ntf_1.1700000000.`).update(body).digest('base64');
  assert.equal(header('webhook-signature'), `v1,${mac}`);

  state.fetch = () => ({ status: 429, headers: [['Retry-After', '12']], body: new TextEncoder().encode('slow') });
  assert.deepEqual(module.outbound.deliver(delivery), { tag: 'retry', val: { status: 429, afterMs: 12_000n, reason: 'HTTP 429 (slow)' } });
  state.fetch = () => ({ status: 410, headers: [], body: new Uint8Array() });
  assert.deepEqual(module.outbound.deliver(delivery).val, { status: 410, reason: 'HTTP 410: the destination is gone', disable: true });
  state.fetch = () => { throw { tag: 'timeout' }; };
  assert.equal(module.outbound.deliver(delivery).tag, 'retry');
  state.secrets = {};
  assert.deepEqual(module.outbound.deliver(delivery).val.reason, 'the secret `signing_key` is not granted to this plugin or not set');
});

test('js-transform redacts, keeps and drops', async () => {
  const { module, state } = await load('js-transform');
  state.config = '{}';
  const kept = module.transformer.transform(notification(), context);
  assert.equal(kept.tag, 'keep');
  assert.deepEqual(JSON.parse(kept.val.payload), { total: 5, redacted: true });
  assert.equal(kept.val.id, 'ntf_1');
  assert.equal(kept.val.createdAtMs, 1_700_000_000_000n);
  assert.deepEqual(kept.val.attributes, [['region', 'eu']]);
  state.config = JSON.stringify({ drop_kinds: ['order.created'] });
  assert.equal(module.transformer.transform(notification(), context).tag, 'drop');
  assert.equal(module.transformer.transform(notification({ kind: 'order.paid' }), context).tag, 'keep');
});

test('js-trivial delivers', async () => {
  const { module } = await load('js-trivial');
  const delivery = { notification: notification(), attempt: 1, channel: 'bench' };
  assert.equal(module.outbound.deliver(delivery).tag, 'delivered');
  const started = performance.now();
  for (let i = 0; i < 1000; i++) module.outbound.deliver(delivery);
  const perCall = (performance.now() - started) / 1000;
  console.log(`js-trivial: ${(perCall * 1000).toFixed(0)} µs per deliver under jco/Node`);
});
