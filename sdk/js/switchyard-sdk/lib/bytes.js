// Bytes, UTF-8 and base64, with nothing but what both Node and StarlingMonkey provide.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string; a Uint8Array (or other typed array / ArrayBuffer) as it is. */
export function toBytes(data) {
  if (data === undefined || data === null) return new Uint8Array(0);
  if (data instanceof Uint8Array) return data;
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new TypeError('expected a string or bytes (Uint8Array)');
}

/** Bytes as text; invalid UTF-8 becomes U+FFFD. */
export function utf8(bytes) {
  return decoder.decode(toBytes(bytes));
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** Standard base64 with padding. */
export function base64Encode(data) {
  const bytes = toBytes(data);
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + '==';
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + '=';
  }
  return out;
}

/**
 * Strict standard base64 with padding (as Rust's `base64::STANDARD`): returns undefined
 * for anything else, including non-zero trailing bits.
 */
export function base64Decode(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0) return undefined;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    const last = i + 4 === text.length;
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      let v;
      if (c === 61 /* = */ && last && j >= 4 - pad) v = 0;
      else {
        v = c < 128 ? LOOKUP[c] : -1;
        if (v < 0) return undefined;
      }
      n = (n << 6) | v;
    }
    if (last && pad === 2 && (n & 0xffff) !== 0) return undefined;
    if (last && pad === 1 && (n & 0xff) !== 0) return undefined;
    out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

/** Compares two byte arrays in time that depends only on their lengths. */
export function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Finds a field (`[name, value]` pair) by name, ignoring ASCII case. */
export function findField(fields, name) {
  const wanted = name.toLowerCase();
  for (const [k, v] of fields ?? []) if (k.toLowerCase() === wanted) return v;
  return undefined;
}

/** `{a: 'b'}` or `[['a', 'b']]` as the contract's list of pairs. */
export function toFields(fields) {
  if (fields === undefined || fields === null) return [];
  if (Array.isArray(fields)) return fields.map(([k, v]) => [String(k), String(v)]);
  if (typeof fields === 'object') return Object.entries(fields).map(([k, v]) => [k, String(v)]);
  throw new TypeError('expected fields as an object or a list of [name, value] pairs');
}
