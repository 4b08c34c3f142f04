// Types for switchyard-sdk: the records of the contract (wit/plugin.wit, package
// switchyard:plugin@0.2.0) as componentize-js hands them over, and the SDK's helpers.

/** One header or query pair: [name, value]. Compare names case-insensitively. */
export type Field = [string, string];
/** Fields as a list of pairs or as an object; the SDK turns objects into pairs. */
export type FieldsInput = Field[] | Record<string, string | number | boolean>;

export type Transport = 'http' | 'ws-message' | 'graphql';
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface PluginInfo {
  name: string;
  version: string;
  description: string;
}

/** An inbound request, handed unchanged to the source's adapter. */
export declare class Request {
  transport: Transport;
  /** Upper case (`POST`); `MESSAGE` for WebSocket frames, `MUTATION` for GraphQL. */
  method: string;
  path: string;
  headers: Field[];
  /** The raw query string, without `?`. */
  query: string;
  /** The raw body bytes, exactly as received. */
  body: Uint8Array;
  /** The first header with this name, ignoring case. */
  header(name: string): string | undefined;
  /** The first query parameter with this name, decoded. */
  queryParam(name: string): string | undefined;
  /** The body as UTF-8; throws a 400 `invalid-encoding` Rejection otherwise. */
  text(): string;
  /** The body parsed as JSON; throws a 400 `invalid-json` Rejection otherwise. */
  json<T = any>(): T;
}

/** A notification the host accepted. */
export declare class Notification {
  id: string;
  /** A dotted kind, such as `invoice.paid`. */
  kind: string;
  source: string;
  attributes: Field[];
  /** The payload as JSON text; `json()` parses it. */
  payload: string;
  /** When the host accepted it, in milliseconds since the Unix epoch. */
  createdAtMs: bigint;
  /** The first attribute with this name. */
  attribute(name: string): string | undefined;
  /** The payload parsed as JSON. */
  json<T = any>(): T;
}

/** A notification as a transform returns it: a payload that is not a string is serialized. */
export interface NotificationInput {
  id?: string;
  kind: string;
  source?: string;
  attributes?: FieldsInput;
  /** JSON text (a string), or any other value to serialize. */
  payload?: unknown;
  createdAtMs?: bigint | number;
}

/** One attempt to deliver one notification to one channel. */
export interface Delivery {
  notification: Notification;
  /** Starting at 1. */
  attempt: number;
  /** The channel's name in the routes file. */
  channel: string;
}

/** Where a transform runs. */
export interface TransformContext {
  route: string;
  channel: string;
  attempt: number;
}

/** A notification draft as the contract carries it. */
export interface Draft {
  kind: string;
  attributes: Field[];
  payload: string;
  idempotencyKey?: string;
}

/** A draft as an adapter may return it. */
export interface DraftInput {
  kind: string;
  attributes?: FieldsInput;
  /** JSON text (a string), or any other value to serialize. */
  payload?: unknown;
  idempotencyKey?: string;
}

export type Outcome =
  | { tag: 'delivered'; val: { status?: number; detail?: string } }
  | { tag: 'retry'; val: { status?: number; afterMs?: bigint; reason: string } }
  | { tag: 'failed'; val: { status?: number; reason: string; disable: boolean } };

export type Transformed =
  | { tag: 'keep'; val: NotificationInput }
  | { tag: 'drop'; val: string }
  | { tag: 'split'; val: NotificationInput[] };

type MaybePromise<T> = T | Promise<T>;

export interface PluginSpec {
  name: string;
  /** Semantic version; defaults to 0.1.0. */
  version?: string;
  description?: string;
}

export interface AdapterSpec extends PluginSpec {
  /** Returns drafts (or one, or none); throw a Rejection to refuse the request. */
  handle(request: Request): MaybePromise<DraftInput[] | DraftInput | void>;
}
export interface ChannelSpec extends PluginSpec {
  /** Returns an Outcome; a thrown FetchError or ConfigError becomes one for you. */
  deliver(delivery: Delivery): MaybePromise<Outcome>;
}
export interface TransformSpec extends PluginSpec {
  /** Returns Transform.keep/drop/split; throw a TransformError to fail. */
  transform(notification: Notification, context: TransformContext): MaybePromise<Transformed>;
}

/** `export const inbound = defineAdapter({...})` */
export function defineAdapter(spec: AdapterSpec): { info(): PluginInfo; handle(request: unknown): unknown };
/** `export const outbound = defineChannel({...})` */
export function defineChannel(spec: ChannelSpec): { info(): PluginInfo; deliver(delivery: unknown): unknown };
/** `export const transformer = defineTransform({...})` */
export function defineTransform(spec: TransformSpec): { info(): PluginInfo; transform(notification: unknown, context: TransformContext): unknown };

export interface ResponseLike {
  status: number;
  headers?: FieldsInput;
  body?: Uint8Array | string;
}

export declare const Outcome: {
  delivered(options?: { status?: number; detail?: string }): Outcome;
  retry(reason: string, options?: { status?: number; afterMs?: number | bigint }): Outcome;
  retryAfter(afterMs: number | bigint, reason: string): Outcome;
  failed(reason: string, options?: { status?: number; disable?: boolean }): Outcome;
  /** Failed with status 410 and the disable hint. */
  gone(reason: string): Outcome;
  /** 2xx delivered; 408/429/5xx retry with Retry-After; 410 failed + disable; other failed. */
  fromResponse(response: HttpResponse | ResponseLike, options?: { detail?: (response: HttpResponse) => string | undefined }): Outcome;
  /** FetchError timeout/connection retry, other FetchError or ConfigError failed; else rethrows. */
  fromError(error: unknown): Outcome;
  fromFetch(send: () => HttpResponse, options?: { detail?: (response: HttpResponse) => string | undefined }): Outcome;
};
export function outcomeFromResponse(response: HttpResponse | ResponseLike, options?: { detail?: (response: HttpResponse) => string | undefined }): Outcome;
export function originOf(location: string): string;

export declare class Rejection extends Error {
  constructor(status: number, code: string, message: string, options?: { field?: string });
  status: number;
  code: string;
  field?: string;
  static badRequest(code: string, message: string): Rejection;
  static unauthorized(message: string): Rejection;
  static invalidField(field: string, reason: string): Rejection;
  withField(field: string): this;
  toWire(): { status: number; code: string; message: string; field?: string };
}

export declare const MAX_SPLIT: 100;
export declare const Transform: {
  keep(notification: NotificationInput): Transformed;
  drop(reason: string): Transformed;
  split(notifications: Iterable<NotificationInput>): Transformed;
};
export declare class TransformError extends Error {
  constructor(reason: string, options?: { retry?: boolean });
  reason: string;
  retry: boolean;
  static retry(reason: string): TransformError;
  static fail(reason: string): TransformError;
  toWire(): { reason: string; retry: boolean };
}

export function draft(kind: string, payload?: unknown, options?: { attributes?: FieldsInput; idempotencyKey?: string }): Draft;

export type FetchErrorKind = 'denied' | 'invalid-request' | 'timeout' | 'connection' | 'response-too-large';
export declare class FetchError extends Error {
  constructor(kind: FetchErrorKind, detail?: string);
  kind: FetchErrorKind;
  detail?: string;
  /** True for timeout and connection. */
  readonly retryable: boolean;
}
export declare class HttpStatusError extends Error {
  status: number;
  response: HttpResponse;
}
export declare class HttpResponse {
  constructor(response: ResponseLike);
  static from(response: HttpResponse | ResponseLike): HttpResponse;
  status: number;
  headers: Field[];
  body: Uint8Array;
  readonly ok: boolean;
  header(name: string): string | undefined;
  text(): string;
  json<T = any>(): T;
  retryAfterMs(): number | undefined;
}
export declare class HttpRequest {
  constructor(method: string, url: string);
  method: string;
  url: string;
  headers: Field[];
  header(name: string, value: string | number): this;
  withHeaders(headers: FieldsInput): this;
  bearer(token: string): this;
  basicAuth(user: string, password: string): this;
  body(body: string | Uint8Array): this;
  json(value: unknown): this;
  form(pairs: FieldsInput): this;
  timeout(ms: number): this;
  toWire(): { method: string; url: string; headers: Field[]; body: Uint8Array; timeoutMs?: number };
  /** Throws FetchError when there is no response. */
  send(): HttpResponse;
}
export declare const http: {
  request(method: string, url: string): HttpRequest;
  get(url: string): HttpRequest;
  post(url: string): HttpRequest;
  put(url: string): HttpRequest;
  patch(url: string): HttpRequest;
  delete(url: string): HttpRequest;
};
export function fetchJson<T = any>(
  url: string,
  options?: { method?: string; headers?: FieldsInput; json?: unknown; body?: string | Uint8Array; timeoutMs?: number },
): T;

export declare class ConfigError extends Error {}
export function config<T = Record<string, any>>(): T;
export function requireConfig<T = any>(key: string): T;
export function secret(name: string): string | undefined;
export function requireSecret(name: string): string;
export function now(): number;
export function nowSecs(): number;
export declare const log: Readonly<Record<Level, (...args: unknown[]) => void>>;

export type SecretInput = string | Uint8Array | WebhookSecret;
export type WebhookHeaders = { id?: string; timestamp?: string; signature?: string } | Field[] | Request;
export declare const DEFAULT_TOLERANCE_SECS: 300;
export declare const MAX_SIGNATURES: 5;
export declare class WebhookSecret {
  constructor(secret: SecretInput);
  key: Uint8Array;
  tag(id: string, timestamp: number | bigint | string, body: string | Uint8Array): Uint8Array;
  sign(id: string, timestamp: number | bigint | string, body: string | Uint8Array): string;
}
export type WebhookVerifyCode = 'missing-header' | 'bad-timestamp' | 'outside-tolerance' | 'no-matching-signature' | 'too-many-signatures';
export declare class WebhookVerifyError extends Error {
  code: WebhookVerifyCode;
  skewSecs?: number;
  header?: string;
}
export function parseSecret(secret: SecretInput): WebhookSecret;
export function sign(secret: SecretInput, id: string, timestamp: number | bigint | string, body: string | Uint8Array): string;
export function signedHeaders(secret: SecretInput, message: { id: string; body: string | Uint8Array; timestamp?: number }): Field[];
export function verify(
  secrets: SecretInput | SecretInput[],
  headers: WebhookHeaders,
  body: string | Uint8Array,
  options?: { nowSecs?: number; toleranceSecs?: number },
): void;
export function verifyRequest(request: Request, secrets: SecretInput | SecretInput[], options?: { nowSecs?: number; toleranceSecs?: number }): void;
export declare const webhooks: {
  DEFAULT_TOLERANCE_SECS: 300;
  MAX_SIGNATURES: 5;
  WebhookSecret: typeof WebhookSecret;
  WebhookVerifyError: typeof WebhookVerifyError;
  parseSecret: typeof parseSecret;
  sign: typeof sign;
  signedHeaders: typeof signedHeaders;
  verify: typeof verify;
  verifyRequest: typeof verifyRequest;
};

export function base64Encode(data: string | Uint8Array): string;
export function base64Decode(text: string): Uint8Array | undefined;
export function toBytes(data: string | Uint8Array | ArrayBuffer | ArrayBufferView | number[] | null | undefined): Uint8Array;
export function utf8(bytes: Uint8Array | string): string;
