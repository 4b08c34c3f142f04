// Test helpers for plugins: program the stand-in host, build inputs.
// Load with `node --test --import switchyard-sdk/testing/register`.
import { state } from 'switchyard:plugin/host@0.2.0';

export const mockHost = {
  /**
   * Resets the host: `config` (an object or JSON text), `secrets` (name -> value), `nowMs`,
   * and `fetch(request)`, which returns `{status, headers, body}` or throws a fetch-error
   * variant such as `{tag: 'timeout'}`.
   */
  reset({ config = {}, secrets = {}, nowMs = 1_700_000_000_000, fetch } = {}) {
    state.config = typeof config === 'string' ? config : JSON.stringify(config);
    state.secrets = { ...secrets };
    state.nowMs = nowMs;
    state.fetch = fetch;
    state.logs = [];
    state.requests = [];
  },
  /** The lines the plugin logged, as {level, message}. */
  get logs() {
    return state.logs;
  },
  /** The http-request records the plugin sent, in order. */
  get requests() {
    return state.requests;
  },
};

/** A notification record as the host hands it over. */
export function notification(fields = {}) {
  return {
    id: 'ntf_1',
    kind: 'test.event',
    source: 'api',
    attributes: [],
    payload: '{}',
    createdAtMs: 1_700_000_000_000n,
    ...fields,
  };
}

/** A delivery record as the host hands it over. */
export function delivery(fields = {}, { attempt = 1, channel = 'test' } = {}) {
  return { notification: notification(fields), attempt, channel };
}

/** A request record as the host hands it over; `body` may be a string. */
export function request({ body = '', headers = [], method = 'POST', path = '/hooks/test', query = '', transport = 'http' } = {}) {
  return {
    transport,
    method,
    path,
    headers: Array.isArray(headers) ? headers : Object.entries(headers),
    query,
    body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
  };
}
