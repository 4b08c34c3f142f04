// A stand-in for the host interface, for tests under Node. Same shapes as inside a
// component: now() is a bigint, secret() may be undefined, fetch() returns the response
// record or throws an Error whose `payload` is the fetch-error variant.
export const state = {
  config: '{}',
  secrets: {},
  nowMs: 1_700_000_000_000,
  fetch: undefined,
  logs: [],
  requests: [],
};

export function log(level, message) {
  state.logs.push({ level, message });
}

export function config() {
  return state.config;
}

export function secret(name) {
  return Object.hasOwn(state.secrets, name) ? state.secrets[name] : undefined;
}

export function now() {
  return BigInt(state.nowMs);
}

export function fetch(request) {
  state.requests.push(request);
  if (!state.fetch) {
    throw Object.assign(new Error('fetch-error'), { payload: { tag: 'denied', val: 'no fetch handler in the test host' } });
  }
  let response;
  try {
    response = state.fetch(request);
  } catch (e) {
    if (e && typeof e.tag === 'string') throw Object.assign(new Error('fetch-error'), { payload: e });
    throw e;
  }
  const body = response.body ?? new Uint8Array(0);
  return {
    status: response.status ?? 200,
    headers: Array.isArray(response.headers) ? response.headers : Object.entries(response.headers ?? {}),
    body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
  };
}
