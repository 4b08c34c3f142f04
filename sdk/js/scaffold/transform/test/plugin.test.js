// `npm test`: the transform against a stand-in host, under plain Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mockHost, notification } from 'switchyard-sdk/testing';
import { transformer } from '../src/index.js';

const context = { route: 'r', channel: 'c', attempt: 1 };

test('removes the configured fields', () => {
  mockHost.reset({ config: { remove: ['email'] } });
  const out = transformer.transform(notification({ payload: '{"email":"a@b","n":1}' }), context);
  assert.equal(out.tag, 'keep');
  assert.deepEqual(JSON.parse(out.val.payload), { n: 1, transformed_by: '__NAME__' });
});

test('drops the configured kinds', () => {
  mockHost.reset({ config: { drop_kinds: ['test.event'] } });
  assert.equal(transformer.transform(notification(), context).tag, 'drop');
});
