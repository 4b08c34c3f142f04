import type { ResponseLike, Field } from '../index.js';

export declare const mockHost: {
  reset(options?: {
    config?: object | string;
    secrets?: Record<string, string>;
    nowMs?: number;
    /** Returns a response, or throws a fetch-error variant such as {tag: 'timeout'}. */
    fetch?: (request: { method: string; url: string; headers: Field[]; body: Uint8Array; timeoutMs?: number }) => ResponseLike;
  }): void;
  readonly logs: { level: string; message: string }[];
  readonly requests: { method: string; url: string; headers: Field[]; body: Uint8Array; timeoutMs?: number }[];
};
export function notification(fields?: Record<string, unknown>): any;
export function delivery(fields?: Record<string, unknown>, options?: { attempt?: number; channel?: string }): any;
export function request(options?: { body?: string | Uint8Array; headers?: Field[] | Record<string, string>; method?: string; path?: string; query?: string; transport?: string }): any;
