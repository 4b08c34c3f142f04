// defineAdapter, defineChannel, defineTransform: the export objects of the three worlds.
import { Outcome } from './outcome.js';
import { FetchError } from './http.js';
import { Rejection } from './rejection.js';
import { ConfigError, log, routeConsoleToHost } from './runtime.js';
import { Transform, TransformError } from './transform.js';
import { toWireDraft, toWireNotification, wrapNotification, wrapRequest } from './records.js';

function pluginInfo(kind, spec) {
  if (!spec || typeof spec !== 'object') throw new TypeError(`define${kind} takes {name, version, description, ...}`);
  const { name, version = '0.1.0', description = '' } = spec;
  if (typeof name !== 'string' || name === '') throw new TypeError(`define${kind} needs a name`);
  const info = Object.freeze({ name, version: String(version), description: String(description) });
  return () => ({ ...info });
}

function isThenable(value) {
  return value !== null && typeof value === 'object' && typeof value.then === 'function';
}

// A value or a promise of one, then `map`, with errors through `recover`.
function settle(run, map, recover) {
  let result;
  try {
    result = run();
  } catch (e) {
    return recover(e);
  }
  if (isThenable(result)) return result.then(map, recover);
  return map(result);
}

// Inside a component there is no stdout: console output and uncaught errors go to the
// host's log. Under Node (tests), console is left alone.
function setUp() {
  if (typeof globalThis.process === 'undefined') routeConsoleToHost();
}

function crash(what, error) {
  log.error(`${what} threw:`, error);
  throw error;
}

/**
 * An adapter's `inbound` export: `export const inbound = defineAdapter({name, version,
 * description, handle(request) { ...; return [draft(...)] }})`. `handle` returns a list of
 * drafts (or one draft, or nothing) and throws a Rejection to refuse the request.
 */
export function defineAdapter(spec) {
  const info = pluginInfo('Adapter', spec);
  if (typeof spec.handle !== 'function') throw new TypeError('defineAdapter needs handle(request)');
  setUp();
  return {
    info,
    handle(request) {
      return settle(
        () => spec.handle(wrapRequest(request)),
        (drafts) => {
          if (drafts === undefined || drafts === null) return [];
          return (Array.isArray(drafts) ? drafts : [drafts]).map(toWireDraft);
        },
        (error) => {
          if (error instanceof Rejection) throw error.toWire();
          return crash('handle', error);
        },
      );
    },
  };
}

/**
 * A channel's `outbound` export: `export const outbound = defineChannel({name, version,
 * description, deliver(delivery) { ...; return Outcome.delivered() }})`. A FetchError or
 * ConfigError thrown from `deliver` becomes an outcome (retry or failed) for you.
 */
export function defineChannel(spec) {
  const info = pluginInfo('Channel', spec);
  if (typeof spec.deliver !== 'function') throw new TypeError('defineChannel needs deliver(delivery)');
  setUp();
  return {
    info,
    deliver(delivery) {
      wrapNotification(delivery.notification);
      return settle(
        () => spec.deliver(delivery),
        (outcome) => toWireOutcome(outcome),
        (error) => {
          if (error instanceof FetchError || error instanceof ConfigError) return Outcome.fromError(error);
          return crash('deliver', error);
        },
      );
    },
  };
}

/**
 * A transform's `transformer` export: `export const transformer = defineTransform({name,
 * version, description, transform(notification, context) { return Transform.keep(...) }})`.
 * Throw a TransformError to fail; a FetchError becomes a retry (timeout, connection) or a
 * failure, a ConfigError a failure.
 */
export function defineTransform(spec) {
  const info = pluginInfo('Transform', spec);
  if (typeof spec.transform !== 'function') throw new TypeError('defineTransform needs transform(notification, context)');
  setUp();
  return {
    info,
    transform(notification, context) {
      return settle(
        () => spec.transform(wrapNotification(notification), context),
        (result) => toWireTransformed(result),
        (error) => {
          if (error instanceof TransformError) throw error.toWire();
          if (error instanceof FetchError) throw { reason: error.message, retry: error.retryable };
          if (error instanceof ConfigError) throw { reason: error.message, retry: false };
          return crash('transform', error);
        },
      );
    },
  };
}

function toWireOutcome(outcome) {
  if (!outcome || typeof outcome !== 'object' || !['delivered', 'retry', 'failed'].includes(outcome.tag)) {
    return crash('deliver', new TypeError('deliver must return an Outcome, such as Outcome.delivered()'));
  }
  const val = outcome.val ?? {};
  switch (outcome.tag) {
    case 'delivered':
      return Outcome.delivered(val);
    case 'retry':
      return Outcome.retry(val.reason ?? '', val);
    default:
      return Outcome.failed(val.reason ?? '', val);
  }
}

function toWireTransformed(result) {
  if (!result || typeof result !== 'object' || !['keep', 'drop', 'split'].includes(result.tag)) {
    return crash('transform', new TypeError('transform must return Transform.keep(n), Transform.drop(reason) or Transform.split([...])'));
  }
  try {
    switch (result.tag) {
      case 'keep':
        return { tag: 'keep', val: toWireNotification(result.val) };
      case 'drop':
        return Transform.drop(result.val ?? '');
      default:
        return Transform.split(result.val ?? []);
    }
  } catch (e) {
    if (e instanceof TransformError) throw e.toWire();
    throw { reason: `the transform's result is malformed: ${e.message}`, retry: false };
  }
}
