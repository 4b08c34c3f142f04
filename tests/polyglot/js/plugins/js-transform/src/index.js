// js-transform: removes `payload.email` and `payload.phone`, marks the payload
// `redacted: true` and keeps the notification; drops it when its kind is listed in
// config `{"drop_kinds": [...]}`. A payload that is not a JSON object is kept as it is.
import { defineTransform, Transform, config } from 'switchyard-sdk';

const REDACTED = ['email', 'phone'];

export const transformer = defineTransform({
  name: 'js-transform',
  version: '0.1.0',
  description: 'Redacts payload.email and payload.phone; drops the kinds in config.drop_kinds',

  transform(notification, context) {
    const dropKinds = config().drop_kinds ?? [];
    if (Array.isArray(dropKinds) && dropKinds.includes(notification.kind)) {
      return Transform.drop(`js-transform: ${notification.kind} is dropped on route ${context.route}`);
    }
    const payload = notification.json();
    // Only an object has fields to redact; anything else goes on as it came.
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return Transform.keep(notification);
    for (const field of REDACTED) delete payload[field];
    payload.redacted = true;
    return Transform.keep({ ...notification, payload });
  },
});
