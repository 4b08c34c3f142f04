// Outbound HTTP through the host: a small builder over the contract's `http-request`.
import { hostFetch } from '../host.js';
import { base64Encode, findField, toBytes, toFields, utf8 } from './bytes.js';
import { now } from './runtime.js';

/**
 * Why an outbound request produced no response. `kind` is the contract's fetch-error case:
 * `denied`, `invalid-request`, `timeout`, `connection` or `response-too-large`.
 */
export class FetchError extends Error {
  constructor(kind, detail) {
    super(describe(kind, detail));
    this.name = 'FetchError';
    this.kind = kind;
    this.detail = detail;
  }

  /** True when trying again may help: a timeout or a failed connection. */
  get retryable() {
    return this.kind === 'timeout' || this.kind === 'connection';
  }

  /** From the contract's `fetch-error` variant, `{tag, val}`. */
  static fromWire(error) {
    return new FetchError(error.tag, error.val ?? undefined);
  }
}

function describe(kind, detail) {
  switch (kind) {
    case 'denied':
      return `request denied: ${detail}`;
    case 'invalid-request':
      return `invalid request: ${detail}`;
    case 'timeout':
      return 'timed out';
    case 'connection':
      return `connection failed: ${detail}`;
    case 'response-too-large':
      return "response body over the host's size cap";
    default:
      return `fetch failed: ${kind}${detail ? `: ${detail}` : ''}`;
  }
}

/** A response that is not 2xx, thrown by fetchJson. `response` is the whole answer. */
export class HttpStatusError extends Error {
  constructor(response) {
    const excerpt = response.text().trim().slice(0, 200);
    super(`HTTP ${response.status}${excerpt ? ` (${excerpt})` : ''}`);
    this.name = 'HttpStatusError';
    this.status = response.status;
    this.response = response;
  }
}

/** The answer to an outbound request. Redirects are returned, never followed. */
export class HttpResponse {
  constructor({ status, headers = [], body }) {
    /** The HTTP status code. */
    this.status = status;
    /** The response headers, as [name, value] pairs. */
    this.headers = toFields(headers);
    /** The body bytes. */
    this.body = toBytes(body);
  }

  /** Wraps the contract's `http-response` record (or anything shaped like one). */
  static from(response) {
    return response instanceof HttpResponse ? response : new HttpResponse(response);
  }

  /** True for a 2xx status. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The first header with this name, ignoring case. */
  header(name) {
    return findField(this.headers, name);
  }

  /** The body as text, with invalid UTF-8 replaced. */
  text() {
    return utf8(this.body);
  }

  /** The body parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }

  /** `Retry-After` in milliseconds from now (delta-seconds or an HTTP date), or undefined. */
  retryAfterMs() {
    const value = this.header('retry-after')?.trim();
    if (!value) return undefined;
    if (/^\d+$/.test(value)) return Number(value) * 1000;
    if (!/^[A-Za-z]+,? /.test(value)) return undefined;
    const at = Date.parse(value);
    if (Number.isNaN(at)) return undefined;
    return Math.max(0, at - now());
  }
}

/** An outbound request; build it with http.get/post/..., then call send(). */
export class HttpRequest {
  constructor(method, url) {
    this.method = method;
    this.url = url;
    this.headers = [];
    this.bodyBytes = new Uint8Array(0);
    this.timeoutMs = undefined;
  }

  /** Adds a header. */
  header(name, value) {
    this.headers.push([String(name), String(value)]);
    return this;
  }

  /** Adds several headers, from an object or [name, value] pairs. */
  withHeaders(headers) {
    for (const [k, v] of toFields(headers)) this.header(k, v);
    return this;
  }

  /** Adds `Authorization: Bearer <token>`. */
  bearer(token) {
    return this.header('authorization', `Bearer ${token}`);
  }

  /** Adds `Authorization: Basic <user:password>`. */
  basicAuth(user, password) {
    return this.header('authorization', `Basic ${base64Encode(`${user}:${password}`)}`);
  }

  /** Sets a raw body: a string (sent as UTF-8) or bytes. */
  body(body) {
    this.bodyBytes = toBytes(body);
    return this;
  }

  /** Sets a JSON body and `content-type: application/json`. */
  json(value) {
    return this.header('content-type', 'application/json').body(JSON.stringify(value) ?? 'null');
  }

  /** Sets an `application/x-www-form-urlencoded` body from an object or pairs. */
  form(pairs) {
    const params = new URLSearchParams();
    for (const [k, v] of toFields(pairs)) params.append(k, v);
    return this.header('content-type', 'application/x-www-form-urlencoded').body(params.toString());
  }

  /** Asks for a shorter timeout than the host's, in milliseconds. */
  timeout(ms) {
    this.timeoutMs = ms;
    return this;
  }

  /** The contract's `http-request` record. */
  toWire() {
    return {
      method: this.method,
      url: this.url,
      headers: this.headers,
      body: this.bodyBytes,
      timeoutMs: this.timeoutMs === undefined ? undefined : Math.max(0, Math.min(0xffffffff, Math.round(this.timeoutMs))),
    };
  }

  /**
   * Sends the request through the host and returns the HttpResponse, whatever its status.
   * Throws a FetchError when there is no response (denied, timeout, connection...).
   */
  send() {
    let response;
    try {
      response = hostFetch(this.toWire());
    } catch (e) {
      const error = e?.payload ?? e;
      if (error && typeof error === 'object' && typeof error.tag === 'string') {
        throw FetchError.fromWire(error);
      }
      throw e;
    }
    return new HttpResponse(response);
  }
}

/** Request builders: `http.post(url).json(body).send()`. */
export const http = Object.freeze({
  request: (method, url) => new HttpRequest(method, url),
  get: (url) => new HttpRequest('GET', url),
  post: (url) => new HttpRequest('POST', url),
  put: (url) => new HttpRequest('PUT', url),
  patch: (url) => new HttpRequest('PATCH', url),
  delete: (url) => new HttpRequest('DELETE', url),
});

/**
 * Fetches JSON: `fetchJson(url, {method, headers, json, body, timeoutMs})`. Returns the
 * parsed body of a 2xx answer (undefined for an empty one); throws HttpStatusError for any
 * other status and FetchError when there is no answer.
 */
export function fetchJson(url, options = {}) {
  const request = new HttpRequest(options.method ?? (options.json !== undefined ? 'POST' : 'GET'), url);
  request.header('accept', 'application/json');
  if (options.headers) request.withHeaders(options.headers);
  if (options.json !== undefined) request.json(options.json);
  else if (options.body !== undefined) request.body(options.body);
  if (options.timeoutMs !== undefined) request.timeout(options.timeoutMs);
  const response = request.send();
  if (!response.ok) throw new HttpStatusError(response);
  return response.body.length === 0 ? undefined : response.json();
}
