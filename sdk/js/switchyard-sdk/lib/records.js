// The contract's records as JavaScript objects with a few helper methods.
import { findField, toFields } from './bytes.js';
import { Rejection } from './rejection.js';

/** A notification: id, kind, source, attributes, payload (JSON text), createdAtMs (bigint). */
export class Notification {
  /** The first attribute with this name. */
  attribute(name) {
    for (const [k, v] of this.attributes) if (k === name) return v;
    return undefined;
  }

  /** The payload parsed as JSON. */
  json() {
    return JSON.parse(this.payload);
  }
}

/** An inbound request as the adapter sees it. */
export class Request {
  /** The first header with this name, ignoring case. */
  header(name) {
    return findField(this.headers, name);
  }

  /** The first query parameter with this name, decoded. */
  queryParam(name) {
    return new URLSearchParams(this.query).get(name) ?? undefined;
  }

  /** The body as UTF-8 text; a 400 `invalid-encoding` Rejection when it is not UTF-8. */
  text() {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.body);
    } catch {
      throw Rejection.badRequest('invalid-encoding', 'the body is not UTF-8');
    }
  }

  /** The body parsed as JSON; malformed JSON becomes a 400 `invalid-json` Rejection. */
  json() {
    const text = this.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      throw Rejection.badRequest('invalid-json', `the body is not valid JSON: ${e.message}`);
    }
  }
}

export function wrapNotification(raw) {
  return Object.setPrototypeOf(raw, Notification.prototype);
}

export function wrapRequest(raw) {
  return Object.setPrototypeOf(raw, Request.prototype);
}

/**
 * JSON text for a payload: a string is taken as JSON text (as on the wire) and must parse;
 * any other value is serialized. `undefined` is `null`.
 */
export function payloadText(payload, what = 'payload') {
  if (payload === undefined) return 'null';
  if (typeof payload === 'string') {
    try {
      JSON.parse(payload);
    } catch {
      throw new TypeError(
        `${what} is a string but not JSON text; pass the value itself (an object, or JSON.stringify the string)`,
      );
    }
    return payload;
  }
  return JSON.stringify(payload, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

/**
 * A notification draft, as an adapter returns it: `draft('invoice.paid', {invoice: 42},
 * {attributes: {severity: 'high'}, idempotencyKey: 'invoice-42'})`.
 */
export function draft(kind, payload, { attributes, idempotencyKey } = {}) {
  return toWireDraft({ kind, payload, attributes, idempotencyKey });
}

export function toWireDraft(d) {
  if (!d || typeof d.kind !== 'string' || d.kind === '') {
    throw new TypeError('a draft needs a kind, such as invoice.paid');
  }
  return {
    kind: d.kind,
    attributes: toFields(d.attributes),
    payload: payloadText(d.payload, `the payload of draft ${d.kind}`),
    idempotencyKey: d.idempotencyKey ?? undefined,
  };
}

export function toWireNotification(n) {
  if (!n || typeof n !== 'object') throw new TypeError('expected a notification object');
  let created = n.createdAtMs ?? 0n;
  if (typeof created !== 'bigint') created = BigInt(Math.max(0, Math.round(Number(created))));
  return {
    id: String(n.id ?? ''),
    kind: String(n.kind),
    source: String(n.source ?? ''),
    attributes: toFields(n.attributes),
    payload: payloadText(n.payload, `the payload of notification ${n.id ?? ''}`),
    createdAtMs: created,
  };
}

