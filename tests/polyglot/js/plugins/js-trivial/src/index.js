// js-trivial: a channel that delivers everything at once, to measure the cost of calling
// a JavaScript component.
import { defineChannel, Outcome } from 'switchyard-sdk';

export const outbound = defineChannel({
  name: 'js-trivial',
  version: '0.1.0',
  description: 'Delivers everything at once, for latency benchmarks',
  deliver: () => Outcome.delivered(),
});
