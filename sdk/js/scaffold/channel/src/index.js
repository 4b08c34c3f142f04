// @ts-check
// __NAME__: a Switchyard channel. It posts each notification as JSON to the `url` in its
// config, signed with Standard Webhooks when the routes file grants it a `signing_key`
// secret, and turns the answer into an outcome (2xx delivered, 408/429/5xx retry with
// Retry-After, 410 failed and disabled, anything else failed).
import { defineChannel, Outcome, http, requireConfig, secret, signedHeaders, log } from 'switchyard-sdk';

export const outbound = defineChannel({
  name: '__NAME__',
  version: '0.1.0',
  description: 'Posts notifications as JSON to a URL',

  deliver(delivery) {
    const url = requireConfig('url');
    const n = delivery.notification;
    const body = JSON.stringify({
      id: n.id,
      kind: n.kind,
      source: n.source,
      attributes: Object.fromEntries(n.attributes),
      payload: n.json(),
    });
    const request = http.post(url).header('content-type', 'application/json').body(body);
    const key = secret('signing_key');
    if (key) request.withHeaders(signedHeaders(key, { id: n.id, body }));
    log.debug(`posting ${n.id} (attempt ${delivery.attempt})`);
    // A timeout or refused connection thrown by send() becomes a retry for you.
    return Outcome.fromResponse(request.send());
  },
});
