// defineAdapter, defineChannel, defineTransform against the stand-in host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  defineAdapter, defineChannel, defineTransform, draft, http, fetchJson, config, requireSecret, log,
  Outcome, Rejection, Transform, TransformError, HttpStatusError, FetchError,
} from '../switchyard-sdk/index.js';
import { mockHost, delivery, notification, request } from '../switchyard-sdk/testing/index.js';

test('info comes from the definition', () => {
  const ch = defineChannel({ name: 'c', version: '1.2.3', description: 'd', deliver: () => Outcome.delivered() });
  assert.deepEqual(ch.info(), { name: 'c', version: '1.2.3', description: 'd' });
  assert.throws(() => defineChannel({ deliver() {} }), /needs a name/);
  assert.throws(() => defineAdapter({ name: 'a' }), /handle/);
});

test('a channel posts through the host and maps the answer', () => {
  mockHost.reset({ config: { url: 'https://example.com/hook' }, fetch: () => ({ status: 503, headers: { 'retry-after': '2' } }) });
  const ch = defineChannel({
    name: 'c',
    deliver(d) {
      log.info('sending', d.notification.id, { attempt: d.attempt });
      return Outcome.fromResponse(http.post(config().url).bearer('t').json({ id: d.notification.id, kind: d.notification.kind }).timeout(500).send());
    },
  });
  assert.deepEqual(ch.deliver(delivery({ id: 'n1' })), { tag: 'retry', val: { status: 503, afterMs: 2000n, reason: 'HTTP 503' } });
  const [sent] = mockHost.requests;
  assert.equal(sent.method, 'POST');
  assert.equal(sent.url, 'https://example.com/hook');
  assert.deepEqual(sent.headers, [['authorization', 'Bearer t'], ['content-type', 'application/json']]);
  assert.equal(new TextDecoder().decode(sent.body), '{"id":"n1","kind":"test.event"}');
  assert.equal(sent.timeoutMs, 500);
  assert.deepEqual(mockHost.logs, [{ level: 'info', message: 'sending n1 {"attempt":1}' }]);
});

test('a channel turns fetch and config errors into outcomes', () => {
  const ch = defineChannel({ name: 'c', deliver: () => Outcome.fromResponse(http.get(config().url).send()) });
  mockHost.reset({ config: { url: 'https://x' }, fetch: () => { throw { tag: 'timeout' }; } });
  assert.equal(ch.deliver(delivery()).tag, 'retry');
  mockHost.reset({ config: { url: 'https://x' }, fetch: () => { throw { tag: 'denied', val: 'x is not granted' }; } });
  assert.deepEqual(ch.deliver(delivery()).val.reason, 'request denied: x is not granted');
  mockHost.reset({ config: 'not json' });
  const o = ch.deliver(delivery());
  assert.equal(o.tag, 'failed');
  assert.match(o.val.reason, /^invalid plugin config: /);
  const needsSecret = defineChannel({ name: 'c', deliver: () => Outcome.delivered({ detail: requireSecret('token') }) });
  mockHost.reset({ secrets: { token: 's3' } });
  assert.equal(needsSecret.deliver(delivery()).val.detail, 's3');
  mockHost.reset();
  assert.deepEqual(needsSecret.deliver(delivery()).val.reason, 'the secret `token` is not granted to this plugin or not set');
});

test('a channel that throws anything else logs it and throws (the host sees a trap)', () => {
  mockHost.reset();
  const ch = defineChannel({ name: 'c', deliver: () => null.x });
  assert.throws(() => ch.deliver(delivery()), TypeError);
  assert.equal(mockHost.logs[0].level, 'error');
  const wrong = defineChannel({ name: 'c', deliver: () => 'ok' });
  assert.throws(() => wrong.deliver(delivery()), /must return an Outcome/);
});

test('an async deliver resolves to a wire outcome', async () => {
  const ch = defineChannel({ name: 'c', deliver: async () => Outcome.retry('later', { afterMs: 10 }) });
  assert.deepEqual(await ch.deliver(delivery()), { tag: 'retry', val: { status: undefined, afterMs: 10n, reason: 'later' } });
});

test('an adapter returns drafts and throws rejections as records', () => {
  const ad = defineAdapter({
    name: 'a',
    handle(req) {
      if (req.header('X-Token') !== 'ok') throw Rejection.unauthorized('missing or wrong x-token');
      const body = req.json();
      if (typeof body.kind !== 'string') throw Rejection.invalidField('kind', 'is required');
      return [draft(body.kind, body.payload, { attributes: { severity: 'high' }, idempotencyKey: req.queryParam('key') })];
    },
  });
  assert.deepEqual(ad.handle(request({ body: '{"kind":"build.failed","payload":{"n":1}}', headers: { 'x-token': 'ok' }, query: 'key=k%201' })), [
    { kind: 'build.failed', attributes: [['severity', 'high']], payload: '{"n":1}', idempotencyKey: 'k 1' },
  ]);
  const refusal = (fn) => { try { fn(); } catch (e) { return e; } };
  assert.deepEqual(refusal(() => ad.handle(request({ body: '{}' }))), { status: 401, code: 'invalid-signature', message: 'missing or wrong x-token', field: undefined });
  assert.deepEqual(refusal(() => ad.handle(request({ body: '{}', headers: { 'x-token': 'ok' } }))), { status: 422, code: 'invalid-field', message: 'kind: is required', field: 'kind' });
  const badJson = refusal(() => ad.handle(request({ body: '{', headers: { 'x-token': 'ok' } })));
  assert.equal(badJson.status, 400);
  assert.equal(badJson.code, 'invalid-json');
  const notUtf8 = refusal(() => ad.handle(request({ body: new Uint8Array([0xff, 0xfe]), headers: { 'x-token': 'ok' } })));
  assert.equal(notUtf8.code, 'invalid-encoding');
  // One draft or none are fine too.
  assert.deepEqual(defineAdapter({ name: 'a', handle: () => {} }).handle(request()), []);
  assert.equal(defineAdapter({ name: 'a', handle: () => ({ kind: 'k', payload: { a: 1 } }) }).handle(request())[0].payload, '{"a":1}');
});

test('payload strings must be JSON text', () => {
  const ad = defineAdapter({ name: 'a', handle: () => ({ kind: 'k', payload: 'hello' }) });
  mockHost.reset();
  assert.throws(() => ad.handle(request()), /not JSON text/);
  assert.equal(draft('k', '"hello"').payload, '"hello"');
  assert.equal(draft('k').payload, 'null');
});

test('a transform keeps, drops and splits', () => {
  const tr = defineTransform({
    name: 't',
    transform(n, ctx) {
      if (n.kind === 'drop.me') return Transform.drop(`dropped on ${ctx.route}`);
      if (n.kind === 'split.me') return Transform.split(n.json().items.map((item) => ({ ...n, payload: { item } })));
      return Transform.keep({ ...n, attributes: [...n.attributes, ['seen', n.attribute('a') ?? 'none']], payload: { ...n.json(), ok: true } });
    },
  });
  const ctx = { route: 'r', channel: 'c', attempt: 1 };
  assert.deepEqual(tr.transform(notification({ payload: '{"x":1}', attributes: [['a', 'b']] }), ctx), {
    tag: 'keep',
    val: { id: 'ntf_1', kind: 'test.event', source: 'api', attributes: [['a', 'b'], ['seen', 'b']], payload: '{"x":1,"ok":true}', createdAtMs: 1_700_000_000_000n },
  });
  assert.deepEqual(tr.transform(notification({ kind: 'drop.me' }), ctx), { tag: 'drop', val: 'dropped on r' });
  const split = tr.transform(notification({ kind: 'split.me', payload: '{"items":[1,2]}' }), ctx);
  assert.equal(split.tag, 'split');
  assert.deepEqual(split.val.map((n) => n.payload), ['{"item":1}', '{"item":2}']);
});

test('a transform fails with transform-error records', () => {
  const ctx = { route: 'r', channel: 'c', attempt: 1 };
  const thrown = (tr) => { try { tr.transform(notification(), ctx); } catch (e) { return e; } };
  assert.deepEqual(thrown(defineTransform({ name: 't', transform: () => { throw TransformError.retry('lookup timed out'); } })), { reason: 'lookup timed out', retry: true });
  assert.deepEqual(thrown(defineTransform({ name: 't', transform: () => { throw TransformError.fail('no email'); } })), { reason: 'no email', retry: false });
  mockHost.reset({ fetch: () => { throw { tag: 'connection', val: 'refused' }; } });
  assert.deepEqual(thrown(defineTransform({ name: 't', transform: () => http.get('https://x').send() })), { reason: 'connection failed: refused', retry: true });
  assert.deepEqual(
    thrown(defineTransform({ name: 't', transform: () => Transform.split(Array(101).fill(notification())) })),
    { reason: 'split into 101 notifications, more than 100', retry: false },
  );
});

test('fetchJson returns the parsed body or throws typed errors', () => {
  mockHost.reset({ fetch: (req) => ({ status: 200, body: JSON.stringify({ got: new TextDecoder().decode(req.body), method: req.method }) }) });
  assert.deepEqual(fetchJson('https://x', { json: { a: 1 } }), { got: '{"a":1}', method: 'POST' });
  assert.deepEqual(mockHost.requests[0].headers, [['accept', 'application/json'], ['content-type', 'application/json']]);
  mockHost.reset({ fetch: () => ({ status: 404, body: 'no such thing' }) });
  assert.throws(() => fetchJson('https://x'), (e) => e instanceof HttpStatusError && e.status === 404 && e.message === 'HTTP 404 (no such thing)');
  mockHost.reset({ fetch: () => { throw { tag: 'response-too-large' }; } });
  assert.throws(() => fetchJson('https://x'), (e) => e instanceof FetchError && e.kind === 'response-too-large' && !e.retryable);
});

test('request builder: basic auth and forms', () => {
  const r = http.post('https://x').basicAuth('user', 'pässword').form({ a: 'b c', d: '&' }).toWire();
  assert.deepEqual(r.headers, [['authorization', `Basic ${Buffer.from('user:pässword').toString('base64')}`], ['content-type', 'application/x-www-form-urlencoded']]);
  assert.equal(new TextDecoder().decode(r.body), 'a=b+c&d=%26');
});
