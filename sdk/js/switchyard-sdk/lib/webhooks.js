// Standard Webhooks (https://www.standardwebhooks.com): sign outbound messages and verify
// inbound ones, exactly as the Rust SDK does.
//
// The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
// `v1,<base64 HMAC-SHA256>` keyed by the secret, whose `whsec_` prefix is dropped and whose
// rest is base64. A header may carry several space-separated signatures (key rotation);
// one with more than MAX_SIGNATURES `v1` entries is refused unread. The body is hashed once
// per secret, however many candidates there are, and every comparison is constant-time.
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { base64Decode, base64Encode, constantTimeEqual, findField, toBytes } from './bytes.js';
import { Rejection } from './rejection.js';
import { ConfigError, nowSecs } from './runtime.js';

/** The default tolerance between `webhook-timestamp` and now: five minutes either way. */
export const DEFAULT_TOLERANCE_SECS = 5 * 60;

/** The most `v1` signatures one `webhook-signature` header may carry. */
export const MAX_SIGNATURES = 5;

const DOT = new Uint8Array([0x2e]);
const U64_MAX = 18446744073709551615n;

/** A decoded signing secret. */
export class WebhookSecret {
  /** Parses `whsec_<base64>` (the prefix is optional). Throws a TypeError when malformed. */
  constructor(secret) {
    if (secret instanceof WebhookSecret) {
      this.key = secret.key;
      return;
    }
    if (secret instanceof Uint8Array) {
      if (secret.length === 0) throw new TypeError('the signing secret is empty');
      this.key = secret;
      return;
    }
    let encoded = String(secret).trim();
    if (encoded.startsWith('whsec_')) encoded = encoded.slice('whsec_'.length);
    const key = base64Decode(encoded);
    // Never echo the secret, or a piece of it, in the message.
    if (key === undefined) throw new TypeError('the signing secret is not whsec_ followed by base64');
    if (key.length === 0) throw new TypeError('the signing secret is empty');
    this.key = key;
  }

  /** The raw HMAC-SHA256 tag over `{id}.{timestamp}.{body}`. */
  tag(id, timestamp, body) {
    return hmac
      .create(sha256, this.key)
      .update(toBytes(String(id)))
      .update(DOT)
      .update(toBytes(String(timestamp)))
      .update(DOT)
      .update(toBytes(body))
      .digest();
  }

  /** The `webhook-signature` value for one message: `v1,<base64>`. */
  sign(id, timestamp, body) {
    return `v1,${base64Encode(this.tag(id, timestamp, body))}`;
  }
}

/** Parses `whsec_<base64>`. */
export function parseSecret(secret) {
  return new WebhookSecret(secret);
}

/** The `webhook-signature` value for one message, signed with `secret` (a string or WebhookSecret). */
export function sign(secret, id, timestamp, body) {
  return new WebhookSecret(secret).sign(id, timestamp, body);
}

/**
 * The three headers of one signed message, as [name, value] pairs to add to a request.
 * `timestamp` defaults to the host's clock, in seconds.
 */
export function signedHeaders(secret, { id, body, timestamp = nowSecs() }) {
  return [
    ['webhook-id', String(id)],
    ['webhook-timestamp', String(timestamp)],
    ['webhook-signature', sign(secret, id, timestamp, body)],
  ];
}

/**
 * Why a message did not verify. `code` is one of `missing-header`, `bad-timestamp`,
 * `outside-tolerance`, `no-matching-signature`, `too-many-signatures`.
 */
export class WebhookVerifyError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'WebhookVerifyError';
    this.code = code;
    Object.assign(this, extra);
  }
}

function pickHeaders(headers) {
  if (headers && typeof headers.header === 'function') {
    return {
      id: headers.header('webhook-id'),
      timestamp: headers.header('webhook-timestamp'),
      signature: headers.header('webhook-signature'),
    };
  }
  if (Array.isArray(headers)) {
    return {
      id: findField(headers, 'webhook-id'),
      timestamp: findField(headers, 'webhook-timestamp'),
      signature: findField(headers, 'webhook-signature'),
    };
  }
  return headers ?? {};
}

/**
 * Verifies a message against one or more secrets. `headers` is `{id, timestamp, signature}`,
 * a list of [name, value] pairs, or a Request. Throws a WebhookVerifyError saying why not.
 * `nowSecs` defaults to the host's clock, `toleranceSecs` to five minutes.
 */
export function verify(secrets, headers, body, { nowSecs: now, toleranceSecs = DEFAULT_TOLERANCE_SECS } = {}) {
  // Unset secrets (secret() of a name not granted) are skipped; none at all is a config problem.
  const list = (Array.isArray(secrets) ? secrets : [secrets]).filter((s) => s !== undefined && s !== null && s !== '');
  if (list.length === 0) throw new ConfigError('no signing secret is granted to this plugin or set');
  const { id, timestamp, signature } = pickHeaders(headers);
  if (id === undefined || id === null) throw missing('webhook-id');
  if (timestamp === undefined || timestamp === null) throw missing('webhook-timestamp');
  if (signature === undefined || signature === null) throw missing('webhook-signature');
  const trimmed = String(timestamp).trim();
  if (!/^\+?\d+$/.test(trimmed) || BigInt(trimmed) > U64_MAX) {
    throw new WebhookVerifyError('bad-timestamp', 'webhook-timestamp is not a whole number of seconds');
  }
  const ts = BigInt(trimmed);
  const current = BigInt(Math.floor(Number(now ?? nowSecs())));
  const skew = ts > current ? ts - current : current - ts;
  if (skew > BigInt(toleranceSecs)) {
    throw new WebhookVerifyError(
      'outside-tolerance',
      `webhook-timestamp is ${skew}s away from now, outside the tolerance`,
      { skewSecs: Number(skew) },
    );
  }

  const candidates = [];
  for (const entry of String(signature).split(/\s+/)) {
    if (!entry.startsWith('v1,')) continue;
    if (candidates.length === MAX_SIGNATURES) {
      throw new WebhookVerifyError(
        'too-many-signatures',
        `webhook-signature carries more than ${MAX_SIGNATURES} v1 signatures`,
      );
    }
    candidates.push(entry.slice(3));
  }
  // A tag that is not base64 cannot match; it is not worth an error of its own.
  const tags = candidates.map(base64Decode).filter((tag) => tag !== undefined);
  if (tags.length > 0) {
    for (const secret of list) {
      const expected = new WebhookSecret(secret).tag(id, ts.toString(), body);
      let matched = false;
      for (const tag of tags) matched = constantTimeEqual(expected, tag) || matched;
      if (matched) return;
    }
  }
  throw new WebhookVerifyError('no-matching-signature', 'no webhook-signature matches the signing secret');
}

function missing(name) {
  return new WebhookVerifyError('missing-header', `the ${name} header is missing`, { header: name });
}

/**
 * For adapters: verifies an inbound Request against one or more secrets, and throws a 401
 * `invalid-signature` Rejection that says why when it does not verify.
 */
export function verifyRequest(request, secrets, options) {
  try {
    verify(secrets, request, request.body, options);
  } catch (e) {
    if (e instanceof WebhookVerifyError) throw Rejection.unauthorized(e.message);
    throw e;
  }
}

/** Everything above as one namespace: `webhooks.sign(...)`, `webhooks.verify(...)`. */
export const webhooks = Object.freeze({
  DEFAULT_TOLERANCE_SECS,
  MAX_SIGNATURES,
  WebhookSecret,
  WebhookVerifyError,
  parseSecret,
  sign,
  signedHeaders,
  verify,
  verifyRequest,
});
