// `npm test`: the adapter against a stand-in host, under plain Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mockHost, request } from 'switchyard-sdk/testing';
import { inbound } from '../src/index.js';

test('turns a JSON body into a draft', () => {
  mockHost.reset();
  const [d] = inbound.handle(request({ body: '{"kind":"build.failed","payload":{"n":1}}' }));
  assert.equal(d.kind, 'build.failed');
  assert.equal(d.payload, '{"n":1}');
});

test('refuses a body without a kind', () => {
  mockHost.reset();
  assert.throws(() => inbound.handle(request({ body: '[{"kind":"a"},{}]' })), (e) => e.status === 422 && e.field === '[1].kind');
});

test('checks the signature when a signing key is granted', () => {
  mockHost.reset({ secrets: { signing_key: 'whsec_c2VjcmV0' } });
  assert.throws(() => inbound.handle(request({ body: '{"kind":"a"}' })), (e) => e.status === 401);
});
