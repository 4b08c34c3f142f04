// Outcome builders, and the one place that maps an HTTP answer to an outcome so every
// channel treats destinations the same way (the same rules as the Rust SDK).
import { utf8 } from './bytes.js';
import { ConfigError } from './runtime.js';
import { FetchError, HttpResponse } from './http.js';

function optionalStatus(status) {
  return status === undefined || status === null ? undefined : status;
}

function optionalMs(ms) {
  if (ms === undefined || ms === null) return undefined;
  if (typeof ms === 'bigint') return ms < 0n ? 0n : ms;
  return BigInt(Math.max(0, Math.round(Number(ms))));
}

/** What happened to one delivery attempt: the contract's `outcome` variant. */
export const Outcome = Object.freeze({
  /** The destination took the notification; `detail` (such as a message id) is recorded. */
  delivered({ status, detail } = {}) {
    return { tag: 'delivered', val: { status: optionalStatus(status), detail: detail ?? undefined } };
  },

  /** A transient failure: try again on the channel's schedule, or no sooner than `afterMs`. */
  retry(reason, { status, afterMs } = {}) {
    return { tag: 'retry', val: { status: optionalStatus(status), afterMs: optionalMs(afterMs), reason: String(reason) } };
  },

  /** A transient failure: try again no sooner than `afterMs` milliseconds from now. */
  retryAfter(afterMs, reason) {
    return Outcome.retry(reason, { afterMs });
  },

  /** A permanent failure: stop retrying and dead-letter the delivery. */
  failed(reason, { status, disable = false } = {}) {
    return { tag: 'failed', val: { status: optionalStatus(status), reason: String(reason), disable: Boolean(disable) } };
  },

  /** The destination is gone for good (HTTP 410): fail, and ask the host to disable it. */
  gone(reason) {
    return Outcome.failed(reason, { status: 410, disable: true });
  },

  /**
   * Classifies an HTTP answer: 2xx delivered; 408, 429 and 5xx retry, honouring
   * `Retry-After`; 410 failed with a disable hint; any other status (3xx included:
   * redirects are never followed) failed. `detail(response)` may pick what goes into a
   * delivered receipt, such as the provider's message id.
   */
  fromResponse(response, { detail } = {}) {
    const res = HttpResponse.from(response);
    const status = res.status;
    const summary = `HTTP ${status}${bodyExcerpt(res.body)}`;
    if (status >= 200 && status <= 299) {
      return Outcome.delivered({ status, detail: detail ? detail(res) : undefined });
    }
    if (status === 410) {
      return Outcome.failed(`${summary}: the destination is gone`, { status, disable: true });
    }
    if (status === 408 || status === 429 || (status >= 500 && status <= 599)) {
      return Outcome.retry(summary, { status, afterMs: res.retryAfterMs() });
    }
    if (status >= 300 && status <= 399) {
      const location = res.header('location');
      const where = location === undefined ? 'nowhere' : originOf(location);
      return Outcome.failed(`${summary}: redirect to ${where} not followed`, { status });
    }
    return Outcome.failed(summary, { status });
  },

  /**
   * Classifies an error thrown while delivering: a FetchError that may pass (timeout,
   * connection) retries, any other FetchError or a ConfigError fails. Anything else is
   * thrown again.
   */
  fromError(error) {
    if (error instanceof FetchError) {
      return error.retryable ? Outcome.retry(error.message) : Outcome.failed(error.message);
    }
    if (error instanceof ConfigError) return Outcome.failed(error.message);
    throw error;
  },

  /**
   * Runs `send` (which returns an HttpResponse, such as `() => request.send()`) and
   * classifies what happens: the answer as fromResponse, a FetchError as fromError.
   */
  fromFetch(send, options) {
    let response;
    try {
      response = send();
    } catch (e) {
      return Outcome.fromError(e);
    }
    return Outcome.fromResponse(response, options);
  },
});

/** Outcome.fromResponse as a plain function. */
export const outcomeFromResponse = (response, options) => Outcome.fromResponse(response, options);

/**
 * Where a redirect points, by scheme, host and port only: a Location can carry a
 * credential, and the reason lands in logs.
 */
export function originOf(location) {
  const at = location.indexOf('://');
  if (at > 0) {
    const scheme = location.slice(0, at);
    if (/^[A-Za-z0-9+.-]+$/.test(scheme)) {
      const rest = location.slice(at + 3);
      const authority = rest.split(/[/?#]/, 1)[0];
      const host = authority.slice(authority.lastIndexOf('@') + 1);
      return `${scheme}://${host}`;
    }
  }
  return 'a path on the same host';
}

/** The start of a response body, for the attempt record. */
function bodyExcerpt(body) {
  const text = utf8(body.subarray(0, 200)).trim();
  return text === '' ? '' : ` (${text})`;
}
