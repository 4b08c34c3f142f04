// The host interface for components transpiled by jco: a programmable stand-in.
export const state = { config: '{}', secrets: {}, nowMs: 1_700_000_000_000, fetch: undefined, logs: [], requests: [] };

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
  try {
    return state.fetch(request);
  } catch (e) {
    if (e && typeof e.tag === 'string') throw Object.assign(new Error('fetch-error'), { payload: e });
    throw e;
  }
}
