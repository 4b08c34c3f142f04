// switchyard-sdk: write Switchyard plugins in JavaScript or TypeScript.
//
// A plugin is a WebAssembly component built by componentize-js from one ES module that
// exports the object of its world: `inbound` (adapter), `outbound` (channel) or
// `transformer` (transform). defineAdapter/defineChannel/defineTransform build those.
export { defineAdapter, defineChannel, defineTransform } from './lib/plugin.js';
export { Outcome, outcomeFromResponse, originOf } from './lib/outcome.js';
export { Rejection } from './lib/rejection.js';
export { Transform, TransformError, MAX_SPLIT } from './lib/transform.js';
export { Notification, Request, draft } from './lib/records.js';
export { http, fetchJson, HttpRequest, HttpResponse, FetchError, HttpStatusError } from './lib/http.js';
export { config, requireConfig, secret, requireSecret, now, nowSecs, log, ConfigError } from './lib/runtime.js';
export {
  webhooks,
  WebhookSecret,
  WebhookVerifyError,
  DEFAULT_TOLERANCE_SECS,
  MAX_SIGNATURES,
  parseSecret,
  sign,
  signedHeaders,
  verify,
  verifyRequest,
} from './lib/webhooks.js';
export { base64Encode, base64Decode, toBytes, utf8 } from './lib/bytes.js';
