// @ts-check
// __NAME__: a Switchyard transform. It removes the payload fields listed in its config
// (`{"remove": ["email"]}`), marks the payload, and drops notifications whose kind is in
// `{"drop_kinds": [...]}`. Transforms run again on every attempt: give the same answer.
import { defineTransform, Transform, TransformError, config } from 'switchyard-sdk';

export const transformer = defineTransform({
  name: '__NAME__',
  version: '0.1.0',
  description: 'Removes payload fields and drops unwanted kinds',

  transform(notification, context) {
    const { remove = [], drop_kinds: dropKinds = [] } = config();
    if (dropKinds.includes(notification.kind)) {
      return Transform.drop(`${notification.kind} is not sent to ${context.channel}`);
    }
    const payload = notification.json();
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      throw TransformError.fail('the payload is not a JSON object');
    }
    for (const field of remove) delete payload[field];
    return Transform.keep({ ...notification, payload: { ...payload, transformed_by: '__NAME__' } });
  },
});
