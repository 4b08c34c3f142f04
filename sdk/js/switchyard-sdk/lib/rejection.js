// Rejection: the answer an adapter gives a request it refuses. Throw one from `handle`.

/** Why an adapter refused a request: the sender gets `status` and a JSON problem body. */
export class Rejection extends Error {
  /**
   * @param {number} status a 4xx status, such as 400, 401, 413 or 422
   * @param {string} code a stable machine-readable code, such as `invalid-signature`
   * @param {string} message a sentence for the sender
   * @param {{field?: string}} [options] the path of the offending field
   */
  constructor(status, code, message, options = {}) {
    super(message);
    this.name = 'Rejection';
    this.status = status;
    this.code = code;
    this.field = options.field;
  }

  /** 400: the request cannot be read at all (not JSON, not UTF-8). */
  static badRequest(code, message) {
    return new Rejection(400, code, message);
  }

  /** 401 `invalid-signature`: the request's signature or token is missing or wrong. */
  static unauthorized(message) {
    return new Rejection(401, 'invalid-signature', message);
  }

  /** 422 `invalid-field`: one field breaks the schema; `field` is its path. */
  static invalidField(field, reason) {
    return new Rejection(422, 'invalid-field', `${field}: ${reason}`, { field });
  }

  /** Names the offending field; returns this rejection. */
  withField(field) {
    this.field = field;
    return this;
  }

  /** The contract's `rejection` record. */
  toWire() {
    return {
      status: this.status,
      code: this.code,
      message: this.message,
      field: this.field ?? undefined,
    };
  }
}
