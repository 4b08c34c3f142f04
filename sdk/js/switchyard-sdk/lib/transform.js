// What a transform returns (keep, drop, split) and how it fails.
import { toWireNotification } from './records.js';

/** The most notifications one split may produce. */
export const MAX_SPLIT = 100;

/**
 * Why a transform could not shape a notification. Throw one from `transform`:
 * `TransformError.retry(reason)` when trying again may help, `TransformError.fail(reason)`
 * when it never will (the delivery is dead-lettered).
 */
export class TransformError extends Error {
  constructor(reason, { retry = false } = {}) {
    super(reason);
    this.name = 'TransformError';
    this.reason = String(reason);
    this.retry = Boolean(retry);
  }

  static retry(reason) {
    return new TransformError(reason, { retry: true });
  }

  static fail(reason) {
    return new TransformError(reason, { retry: false });
  }

  /** The contract's `transform-error` record. */
  toWire() {
    return { reason: this.reason, retry: this.retry };
  }
}

/** What a transform makes of a notification: the contract's `transformed` variant. */
export const Transform = Object.freeze({
  /**
   * Deliver this notification, changed or as it came. Change it by spreading:
   * `Transform.keep({...n, payload: {...n.json(), redacted: true}})`; a payload that is not
   * a string is serialized. The host keeps the original id, source and creation time.
   */
  keep(notification) {
    return { tag: 'keep', val: toWireNotification(notification) };
  },

  /** Deliver nothing to this channel; the reason goes on the attempt record. */
  drop(reason) {
    return { tag: 'drop', val: String(reason) };
  },

  /** Deliver these notifications instead, in order (at most 100); empty is a drop. */
  split(notifications) {
    const list = [...notifications];
    if (list.length > MAX_SPLIT) {
      throw TransformError.fail(`split into ${list.length} notifications, more than ${MAX_SPLIT}`);
    }
    return { tag: 'split', val: list.map(toWireNotification) };
  },
});
