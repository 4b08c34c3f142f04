// Outcome mapping: the same rules as sdk/src/outcome.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FetchError, ConfigError, Outcome, outcomeFromResponse, originOf, base64Decode, base64Encode } from '../switchyard-sdk/index.js';
import { mockHost } from '../switchyard-sdk/testing/index.js';

const res = (status, headers = [], body = '') => ({ status, headers, body: new TextEncoder().encode(body) });

test('2xx is delivered with the status', () => {
  for (const status of [200, 201, 202, 204, 299]) {
    assert.deepEqual(outcomeFromResponse(res(status, [], 'ok')), { tag: 'delivered', val: { status, detail: undefined } });
  }
  const withDetail = Outcome.fromResponse(res(200, [], '{"id":"m1"}'), { detail: (r) => r.json().id });
  assert.equal(withDetail.val.detail, 'm1');
});

test('408, 429 and 5xx retry, honouring Retry-After in seconds', () => {
  assert.deepEqual(outcomeFromResponse(res(429, [['Retry-After', '30']], 'slow down')), {
    tag: 'retry',
    val: { status: 429, afterMs: 30_000n, reason: 'HTTP 429 (slow down)' },
  });
  for (const status of [408, 500, 502, 503, 599]) {
    const o = outcomeFromResponse(res(status));
    assert.equal(o.tag, 'retry');
    assert.equal(o.val.status, status);
    assert.equal(o.val.afterMs, undefined);
    assert.equal(o.val.reason, `HTTP ${status}`);
  }
  assert.equal(outcomeFromResponse(res(503, [['retry-after', ' 0 ']])).val.afterMs, 0n);
  assert.equal(outcomeFromResponse(res(503, [['retry-after', 'soon']])).val.afterMs, undefined);
});

test('Retry-After as an HTTP date counts from the host clock', () => {
  mockHost.reset({ nowMs: Date.parse('Wed, 21 Oct 2015 07:28:00 GMT') });
  assert.equal(outcomeFromResponse(res(503, [['Retry-After', 'Wed, 21 Oct 2015 07:28:45 GMT']])).val.afterMs, 45_000n);
  // A date in the past means now.
  assert.equal(outcomeFromResponse(res(503, [['Retry-After', 'Wed, 21 Oct 2015 07:00:00 GMT']])).val.afterMs, 0n);
});

test('410 fails and asks to disable; other statuses fail', () => {
  assert.deepEqual(outcomeFromResponse(res(410, [], 'bye')), {
    tag: 'failed',
    val: { status: 410, reason: 'HTTP 410 (bye): the destination is gone', disable: true },
  });
  for (const status of [400, 401, 403, 404, 413, 422, 100, 600]) {
    assert.deepEqual(outcomeFromResponse(res(status)), { tag: 'failed', val: { status, reason: `HTTP ${status}`, disable: false } });
  }
});

test('redirects fail, naming only the origin of the Location', () => {
  const o = outcomeFromResponse(res(302, [['Location', 'https://user:pw@hooks.example.com:8443/services/T0/B0/XXXX?t=1#f']]));
  assert.deepEqual(o, {
    tag: 'failed',
    val: { status: 302, reason: 'HTTP 302: redirect to https://hooks.example.com:8443 not followed', disable: false },
  });
  assert.equal(outcomeFromResponse(res(301)).val.reason, 'HTTP 301: redirect to nowhere not followed');
  assert.equal(originOf('http://example.com'), 'http://example.com');
  assert.equal(originOf('/login?next=/x'), 'a path on the same host');
  assert.equal(originOf('secret-token'), 'a path on the same host');
});

test('the body excerpt is the first 200 bytes, trimmed', () => {
  const long = 'y'.repeat(500);
  assert.equal(outcomeFromResponse(res(500, [], `  ${long}`)).val.reason, `HTTP 500 (${'y'.repeat(198)})`);
  assert.equal(outcomeFromResponse(res(500, [], '   \n')).val.reason, 'HTTP 500');
});

test('fetch errors: timeouts and connection failures retry, the rest fail', () => {
  assert.deepEqual(Outcome.fromError(new FetchError('timeout')), { tag: 'retry', val: { status: undefined, afterMs: undefined, reason: 'timed out' } });
  assert.equal(Outcome.fromError(new FetchError('connection', 'refused')).val.reason, 'connection failed: refused');
  assert.equal(Outcome.fromError(new FetchError('connection', 'refused')).tag, 'retry');
  assert.deepEqual(Outcome.fromError(new FetchError('denied', 'example.com is not granted')), {
    tag: 'failed',
    val: { status: undefined, reason: 'request denied: example.com is not granted', disable: false },
  });
  assert.equal(Outcome.fromError(new FetchError('invalid-request', 'bad url')).tag, 'failed');
  assert.equal(Outcome.fromError(new FetchError('response-too-large')).val.reason, "response body over the host's size cap");
  assert.equal(Outcome.fromError(new ConfigError('invalid plugin config: x')).tag, 'failed');
  assert.throws(() => Outcome.fromError(new RangeError('bug')), RangeError);
  assert.equal(Outcome.fromFetch(() => { throw new FetchError('timeout'); }).tag, 'retry');
});

test('builders', () => {
  assert.deepEqual(Outcome.delivered(), { tag: 'delivered', val: { status: undefined, detail: undefined } });
  assert.deepEqual(Outcome.retryAfter(1500, 'busy'), { tag: 'retry', val: { status: undefined, afterMs: 1500n, reason: 'busy' } });
  assert.deepEqual(Outcome.gone('gone'), { tag: 'failed', val: { status: 410, reason: 'gone', disable: true } });
  assert.deepEqual(Outcome.failed('no'), { tag: 'failed', val: { status: undefined, reason: 'no', disable: false } });
});

test('base64 round-trips and is strict', () => {
  for (let n = 0; n < 40; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
    const text = Buffer.from(bytes).toString('base64');
    assert.equal(base64Encode(bytes), text);
    assert.deepEqual(base64Decode(text), bytes);
  }
  for (const bad of ['a', 'ab=', 'a===', 'ab c', 'YQ', 'YR==', 'YWJ=', '====']) assert.equal(base64Decode(bad), undefined, bad);
});
