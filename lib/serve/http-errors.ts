// Errors as the server answers them: JSON {"error": {"code", "message", "type"}} (the shape OpenAI's clients
// read: they show error.message) with an HTTP status chosen from the code. Every code is a LlavaRadError code
// (lib/errors.ts; QUEUE_FULL, SHUTTING_DOWN, UNAUTHORIZED, TIMEOUT, REQUEST_TIMEOUT, NOT_FOUND,
// METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE and UNSUPPORTED_MEDIA_TYPE are the server's).

import { isLlavaRadError, LlavaRadError, type LlavaRadErrorCode } from '../errors.js';

export type ServeErrorCode = LlavaRadErrorCode;

/** a LlavaRadError with the HTTP headers its answer carries (Retry-After, WWW-Authenticate, Allow) */
export class ServeError extends LlavaRadError {
  constructor(code: ServeErrorCode, message: string, readonly headers: Record<string, string> = {}) {
    super(code, message);
  }
}

const STATUS: Partial<Record<ServeErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  CONTEXT_FULL: 400,
  INVALID_IMAGE: 400,
  INVALID_DICOM: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  IMAGE_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNSUPPORTED: 415,
  IMAGE_TOO_SMALL: 422,
  NON_FRONTAL_VIEW: 422,
  QUEUE_FULL: 429,
  ABORTED: 499, // the client went away: nobody reads it, but the log and metrics do
  OUT_OF_MEMORY: 503,
  SHUTTING_DOWN: 503,
  DISPOSED: 503,
  TIMEOUT: 504,
};

export function httpStatus(code: ServeErrorCode): number {
  return STATUS[code] ?? 500;
}

export function errorBody(code: ServeErrorCode, message: string): ErrorBody {
  return { error: { code, message, type: errorType(httpStatus(code)) } };
}

/** OpenAI's error "type" for a status, so its SDKs raise their matching exception classes */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 429) return 'rate_limit_error';
  if (status < 500) return 'invalid_request_error';
  return 'server_error';
}

export interface ErrorBody {
  error: { code: ServeErrorCode; message: string; type: string };
}

export interface HttpError {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
}

/** any thrown value as the server answers it (unknown errors are INTERNAL, 500, with no stack) */
export function toHttpError(e: unknown): HttpError {
  let code: ServeErrorCode = 'INTERNAL';
  let message = 'internal error';
  let headers: Record<string, string> = {};
  if (e instanceof ServeError) {
    ({ code, message, headers } = e);
  } else if (isLlavaRadError(e)) {
    code = e.code;
    message = e.message;
  } else if (e instanceof Error && typeof (e as Error & { statusCode?: unknown }).statusCode === 'number') {
    // fastify's own errors (body too large, bad JSON, bad content type, multipart limits)
    const status = (e as Error & { statusCode: number }).statusCode;
    code = status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : status === 404 ? 'NOT_FOUND' : status < 500 ? 'INVALID_ARGUMENT' : 'INTERNAL';
    message = e.message;
  }
  return { status: httpStatus(code), headers, body: errorBody(code, message) };
}
