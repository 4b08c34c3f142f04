// Config, secrets, time and logging: what the host offers besides fetch.
import { hostLog, hostConfig, hostSecret, hostNow } from '../host.js';

/** A problem with the plugin's config or grants; a channel's delivery fails with it. */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * This plugin's `config` from the routes file, parsed from JSON (`{}` when there is none).
 * Throws a ConfigError that says what is wrong when it is not JSON.
 */
export function config() {
  const text = hostConfig();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`invalid plugin config: ${e.message}`);
  }
}

/**
 * One config value that must be there: `requireConfig('url')`. Throws a ConfigError naming
 * the key when it is missing, null or empty.
 */
export function requireConfig(key) {
  const value = config()?.[key];
  if (value === undefined || value === null || value === '') {
    throw new ConfigError(`invalid plugin config: \`${key}\` is required`);
  }
  return value;
}

/** The value of a secret the routes file grants this plugin, or undefined. */
export function secret(name) {
  const value = hostSecret(name);
  return value === null ? undefined : value;
}

/** A secret that must be granted and set; throws a ConfigError naming it otherwise. */
export function requireSecret(name) {
  const value = secret(name);
  if (value === undefined) {
    throw new ConfigError(`the secret \`${name}\` is not granted to this plugin or not set`);
  }
  return value;
}

/**
 * The host's current time in milliseconds since the Unix epoch. Use this, not Date.now():
 * inside a component, Date.now() is the time the component was built.
 */
export function now() {
  return Number(hostNow());
}

/** The host's current time in whole seconds since the Unix epoch. */
export function nowSecs() {
  return Math.floor(now() / 1000);
}

function show(value) {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack && !value.stack.startsWith(value.name) ? `${value}\n${value.stack}` : String(value.stack ?? value);
  try {
    const text = JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

function writer(level) {
  return (...args) => hostLog(level, args.map(show).join(' '));
}

/** Writes lines to the host's log, tagged with the plugin's name: `log.info('sent', id)`. */
export const log = Object.freeze({
  trace: writer('trace'),
  debug: writer('debug'),
  info: writer('info'),
  warn: writer('warn'),
  error: writer('error'),
});

/**
 * Sends console.log/info/warn/error/debug to the host's log. Inside a component there is
 * no stdout or stderr, so the define* helpers call this for you.
 */
export function routeConsoleToHost() {
  const target = globalThis.console ?? (globalThis.console = {});
  target.log = log.info;
  target.info = log.info;
  target.warn = log.warn;
  target.error = log.error;
  target.debug = log.debug;
  target.trace = log.trace;
}
