// @ts-check
// __NAME__: a Switchyard adapter. It takes a JSON body such as
// {"kind": "build.failed", "attributes": {"severity": "high"}, "payload": {...}} (or a list
// of them), checks the Standard Webhooks signature when the routes file grants it a
// `signing_key` secret, and refuses anything else with the field and the reason.
import { defineAdapter, draft, Rejection, secret, verifyRequest } from 'switchyard-sdk';

export const inbound = defineAdapter({
  name: '__NAME__',
  version: '0.1.0',
  description: 'Turns JSON webhooks into notifications',

  handle(request) {
    const key = secret('signing_key');
    if (key) verifyRequest(request, [key]); // throws a 401 Rejection that says why
    const body = request.json(); // malformed JSON is a 400 Rejection
    const items = Array.isArray(body) ? body : [body];
    return items.map((item, i) => {
      const at = Array.isArray(body) ? `[${i}]` : '';
      if (typeof item?.kind !== 'string' || item.kind === '') {
        throw Rejection.invalidField(`${at ? `${at}.` : ''}kind`, 'is required and must be a string');
      }
      return draft(item.kind, item.payload ?? null, {
        attributes: item.attributes ?? {},
        idempotencyKey: request.header('webhook-id') ?? item.idempotency_key,
      });
    });
  },
});
