// Standard Webhooks: the vectors and cases of the Rust SDK's tests (sdk/src/webhooks.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Request, WebhookVerifyError, parseSecret, sign, signedHeaders, verify, verifyRequest, Rejection } from '../switchyard-sdk/index.js';
import { mockHost, request } from '../switchyard-sdk/testing/index.js';

// The test vector published with the Standard Webhooks specification.
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TIMESTAMP = 1614265330;
const BODY = '{"test": 2432232314}';
const SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

const headers = (signature) => ({ id: ID, timestamp: '1614265330', signature });
const code = (fn) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof WebhookVerifyError, `expected a WebhookVerifyError, got ${e}`);
    return e.code;
  }
};

test('signs the specification vector', () => {
  assert.equal(sign(SECRET, ID, TIMESTAMP, BODY), SIGNATURE);
  assert.equal(parseSecret(SECRET).sign(ID, TIMESTAMP, new TextEncoder().encode(BODY)), SIGNATURE);
  // The whsec_ prefix is optional.
  assert.equal(sign(SECRET.slice(6), ID, TIMESTAMP, BODY), SIGNATURE);
});

test('agrees with node:crypto HMAC-SHA256 on assorted keys and bodies', () => {
  for (const size of [0, 1, 55, 56, 63, 64, 65, 1000, 100_000]) {
    const key = Buffer.alloc(1 + (size % 97), size % 251);
    const body = Buffer.alloc(size, 'x');
    const expected = createHmac('sha256', key).update(`${ID}.${TIMESTAMP}.`).update(body).digest('base64');
    assert.equal(sign(`whsec_${key.toString('base64')}`, ID, TIMESTAMP, body), `v1,${expected}`);
  }
});

test('verifies with tolerance and several signatures', () => {
  const other = 'whsec_c2VjcmV0';
  const opts = (nowSecs) => ({ nowSecs, toleranceSecs: 300 });
  assert.equal(code(() => verify([SECRET], headers(`v1,bm9wZQ== ${SIGNATURE}`), BODY, opts(TIMESTAMP + 299))), 'ok');
  assert.equal(code(() => verify([other, SECRET], headers(SIGNATURE), BODY, opts(TIMESTAMP))), 'ok');
  assert.equal(code(() => verify(SECRET, headers(SIGNATURE), BODY, opts(TIMESTAMP - 300))), 'ok');
  let error;
  try {
    verify([SECRET], headers(SIGNATURE), BODY, opts(TIMESTAMP + 301));
  } catch (e) {
    error = e;
  }
  assert.equal(error.code, 'outside-tolerance');
  assert.equal(error.skewSecs, 301);
  assert.equal(error.message, 'webhook-timestamp is 301s away from now, outside the tolerance');
  assert.equal(code(() => verify([other], headers(SIGNATURE), BODY, opts(TIMESTAMP))), 'no-matching-signature');
  assert.equal(code(() => verify([SECRET], headers(SIGNATURE), '{"test": 1}', opts(TIMESTAMP))), 'no-matching-signature');
});

test('names what is missing or malformed', () => {
  const opts = { nowSecs: TIMESTAMP };
  assert.equal(code(() => verify([SECRET], { timestamp: '1', signature: SIGNATURE }, BODY, opts)), 'missing-header');
  assert.equal(code(() => verify([SECRET], { id: ID, signature: SIGNATURE }, BODY, opts)), 'missing-header');
  assert.equal(code(() => verify([SECRET], { id: ID, timestamp: '1614265330' }, BODY, opts)), 'missing-header');
  for (const bad of ['', 'soon', '-5', '1.5', '99999999999999999999999']) {
    assert.equal(code(() => verify([SECRET], { ...headers(SIGNATURE), timestamp: bad }, BODY, opts)), 'bad-timestamp', bad);
  }
  // Surrounding whitespace is trimmed, as the Rust SDK does.
  assert.equal(code(() => verify([SECRET], { ...headers(SIGNATURE), timestamp: ' 1614265330 ' }, BODY, opts)), 'ok');
  // Tags that are not base64 cannot match.
  assert.equal(code(() => verify([SECRET], headers('v1,%%%'), BODY, opts)), 'no-matching-signature');
  assert.equal(code(() => verify([SECRET], headers(''), BODY, opts)), 'no-matching-signature');
});

test('at most five signatures are looked at', () => {
  const decoy = 'v1,bm9wZQ==';
  const opts = { nowSecs: TIMESTAMP };
  // Four decoys and the real one: five candidates, accepted whatever the order.
  assert.equal(code(() => verify([SECRET], headers(`${decoy} ${decoy} ${SIGNATURE} ${decoy} ${decoy}`), BODY, opts)), 'ok');
  // A sixth v1 signature refuses the header, even with the real one first.
  assert.equal(
    code(() => verify([SECRET], headers(`${SIGNATURE} ${decoy} ${decoy} ${decoy} ${decoy} ${decoy}`), BODY, opts)),
    'too-many-signatures',
  );
  // Entries of other versions do not count as candidates and are skipped.
  assert.equal(code(() => verify([SECRET], headers(`v1a,x v2,y v1a,z v2,w v1a,u v2,t ${SIGNATURE}`), BODY, opts)), 'ok');
});

test('a flood of signatures costs no hashing', () => {
  const body = Buffer.alloc(1024 * 1024, 'x');
  const flood = Array(40_000).fill('v1,AAAA').join(' ');
  const started = performance.now();
  assert.equal(code(() => verify([SECRET], headers(flood), body, { nowSecs: TIMESTAMP })), 'too-many-signatures');
  assert.ok(performance.now() - started < 1000);
});

test('secrets are parsed strictly and never echoed', () => {
  for (const bad of ['whsec_!!!!', 'whsec_abc', 'whsec_']) {
    assert.throws(() => parseSecret(bad), (e) => e instanceof TypeError && !e.message.includes(bad.slice(6) || '\u0000'));
  }
  assert.throws(() => parseSecret('whsec_'), /empty/);
});

test('signedHeaders and verifyRequest round-trip through the host clock', () => {
  mockHost.reset({ nowMs: 1_700_000_123_456 });
  const pairs = signedHeaders(SECRET, { id: 'msg_1', body: BODY });
  assert.deepEqual(pairs.slice(0, 2), [
    ['webhook-id', 'msg_1'],
    ['webhook-timestamp', '1700000123'],
  ]);
  const req = request({ body: BODY, headers: pairs.map(([k, v]) => [k.toUpperCase(), v]) });
  verifyRequest(Object.setPrototypeOf(req, Request.prototype), [SECRET]);
  mockHost.reset({ nowMs: 1_700_000_123_456 + 301_000 });
  assert.throws(
    () => verifyRequest(Object.setPrototypeOf(req, Request.prototype), [SECRET]),
    (e) => e instanceof Rejection && e.status === 401 && e.code === 'invalid-signature' && /tolerance/.test(e.message),
  );
});


test('unset secrets are skipped; none at all is a ConfigError', async () => {
  const { ConfigError } = await import('../switchyard-sdk/index.js');
  assert.equal(code(() => verify([undefined, SECRET], headers(SIGNATURE), BODY, { nowSecs: TIMESTAMP })), 'ok');
  assert.throws(() => verify([undefined], headers(SIGNATURE), BODY, { nowSecs: TIMESTAMP }), ConfigError);
});
