// `npm test`: the channel against a stand-in host, under plain Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mockHost, delivery } from 'switchyard-sdk/testing';
import { outbound } from '../src/index.js';

test('posts the notification and maps the answer', () => {
  mockHost.reset({ config: { url: 'https://example.com/hook' }, fetch: () => ({ status: 204 }) });
  assert.equal(outbound.deliver(delivery({ id: 'n1', payload: '{"a":1}' })).tag, 'delivered');
  const [sent] = mockHost.requests;
  assert.equal(sent.url, 'https://example.com/hook');
  assert.equal(JSON.parse(new TextDecoder().decode(sent.body)).payload.a, 1);
});

test('asks for a retry when the destination is busy', () => {
  mockHost.reset({ config: { url: 'https://example.com/hook' }, fetch: () => ({ status: 429, headers: { 'retry-after': '5' } }) });
  assert.deepEqual(outbound.deliver(delivery()).val.afterMs, 5000n);
});
