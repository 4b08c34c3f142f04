// js-channel: POSTs each notification as JSON to `config.url`, signed with Standard Webhooks
// using the `signing_key` secret, and maps the answer with Outcome.fromResponse.
import { defineChannel, Outcome, http, requireConfig, requireSecret, signedHeaders, log } from 'switchyard-sdk';

export const outbound = defineChannel({
  name: 'js-channel',
  version: '0.1.0',
  description: 'Posts each notification as signed JSON to config.url',

  deliver(delivery) {
    const url = requireConfig('url');
    const key = requireSecret('signing_key');
    const n = delivery.notification;
    const body = JSON.stringify({
      id: n.id,
      kind: n.kind,
      source: n.source,
      attributes: Object.fromEntries(n.attributes),
      payload: n.json(),
      created_at_ms: Number(n.createdAtMs),
      attempt: delivery.attempt,
    });
    log.debug(`js-channel: posting ${n.id} to ${delivery.channel}, attempt ${delivery.attempt}`);
    const response = http
      .post(url)
      .header('content-type', 'application/json')
      .withHeaders(signedHeaders(key, { id: n.id, body }))
      .body(body)
      .send();
    return Outcome.fromResponse(response);
  },
});
