// The one error class of the package. Every failure a caller can see is a LlavaRadError with a stable
// string `code`; engine failures also carry the engine's status name (`status`, e.g. "LR_ERR_BAD_GGUF").

import { types } from 'node:util';

/** Stable error codes. Switch on `error.code`, never on the message. */
export type LlavaRadErrorCode =
  | 'INVALID_ARGUMENT'
  | 'IO'
  | 'BAD_GGUF'
  | 'UNSUPPORTED'
  | 'OUT_OF_MEMORY'
  | 'CONTEXT_FULL'
  | 'BACKEND'
  | 'ABORTED'
  | 'INTERNAL'
  | 'DISPOSED'
  | 'NATIVE_LOAD'
  /** a pickle (PyTorch checkpoint) asked for a global outside the allowlist; nothing was executed */
  | 'UNSAFE_PICKLE'
  /** a checkpoint / tokenizer file to convert is malformed (zip, pickle, safetensors, protobuf) */
  | 'BAD_CHECKPOINT'
  /** an input image is empty, not an image, truncated or corrupt */
  | 'INVALID_IMAGE'
  /** an input image has more pixels than allowed (checked from the header, before decoding) */
  | 'IMAGE_TOO_LARGE'
  /** an input image is too small to be a radiograph */
  | 'IMAGE_TOO_SMALL'
  /** a DICOM file is malformed (truncated, bad lengths, inconsistent pixel attributes or fragments) */
  | 'INVALID_DICOM'
  /** a DICOM's ViewPosition is lateral and the caller asked to refuse non-frontal views */
  | 'NON_FRONTAL_VIEW'
  /** `pull`: a download failed (network, HTTP status) or a file's size / sha256 differs from Hugging Face's;
   *  `eval`'s judge: its endpoint failed (network, HTTP status, timeout) after the retries */
  | 'DOWNLOAD'
  /** `pull`: Hugging Face answered 401/403 (accept the model's terms on Hugging Face, set HF_TOKEN); `eval`'s judge:
   *  its endpoint answered 401/403 (the key in OPENAI_API_KEY / AZURE_OPENAI_API_KEY) */
  | 'ACCESS_DENIED'
  /** `pull`: the weights' license terms have not been accepted (acceptLicense / --accept-license) */
  | 'LICENSE_NOT_ACCEPTED'
  /** `batch`: a manifest (JSONL, CSV or annotation JSON) is malformed: syntax, missing fields, duplicate ids */
  | 'BAD_MANIFEST'
  /** `batch` / `merge`: a predictions file has a line that is not a record (edited, or not ours) */
  | 'BAD_PREDICTIONS'
  /** `batch` / `merge`: predictions of another model (GGUF sha256) or other settings cannot be mixed */
  | 'MODEL_MISMATCH'
  /** `eval`'s judge: the endpoint's reply is not a chat completion, or its answer is not in the judge's format */
  | 'BAD_JUDGE_RESPONSE'
  /** `index` / `search`: a retrieval index (or its build journal) is truncated, corrupt or not an index of llava-rad */
  | 'BAD_INDEX'
  /** `serve` (HTTP 429): the studies admitted (concurrency + queue) are at the limit; retry after Retry-After */
  | 'QUEUE_FULL'
  /** `serve` (HTTP 503): the server is draining after SIGTERM, or a study was cancelled past the grace period */
  | 'SHUTTING_DOWN'
  /** `serve` (HTTP 401): --api-key is set and the request's key is missing or wrong */
  | 'UNAUTHORIZED'
  /** `serve` (HTTP 504): the study ran past the per-request timeout */
  | 'TIMEOUT'
  /** `serve` (HTTP 408): the client did not send its whole request (headers and body) within the request timeout */
  | 'REQUEST_TIMEOUT'
  /** `serve` (HTTP 404): no such route */
  | 'NOT_FOUND'
  /** `serve` (HTTP 405): the route does not take that method */
  | 'METHOD_NOT_ALLOWED'
  /** `serve` (HTTP 413): the request body is over the limit (refused before any decoding) */
  | 'PAYLOAD_TOO_LARGE'
  /** `serve` (HTTP 415): the body is neither multipart/form-data nor JSON */
  | 'UNSUPPORTED_MEDIA_TYPE';

export const ERROR_CODES: readonly LlavaRadErrorCode[] = [
  'INVALID_ARGUMENT', 'IO', 'BAD_GGUF', 'UNSUPPORTED', 'OUT_OF_MEMORY', 'CONTEXT_FULL', 'BACKEND', 'ABORTED',
  'INTERNAL', 'DISPOSED', 'NATIVE_LOAD', 'UNSAFE_PICKLE', 'BAD_CHECKPOINT',
  'INVALID_IMAGE', 'IMAGE_TOO_LARGE', 'IMAGE_TOO_SMALL', 'INVALID_DICOM', 'NON_FRONTAL_VIEW',
  'DOWNLOAD', 'ACCESS_DENIED', 'LICENSE_NOT_ACCEPTED',
  'BAD_MANIFEST', 'BAD_PREDICTIONS', 'MODEL_MISMATCH', 'BAD_JUDGE_RESPONSE', 'BAD_INDEX',
  'QUEUE_FULL', 'SHUTTING_DOWN', 'UNAUTHORIZED', 'TIMEOUT', 'REQUEST_TIMEOUT', 'NOT_FOUND', 'METHOD_NOT_ALLOWED', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE',
];

export interface LlavaRadErrorOptions {
  cause?: unknown;
  /** the engine's status name (lr_status_name), when the error came from the engine */
  status?: string;
}

export class LlavaRadError extends Error {
  /** stable machine-readable code */
  readonly code: LlavaRadErrorCode;
  /** the engine's status name ("LR_ERR_BAD_GGUF", ...) when the engine reported the error */
  readonly status: string | undefined;

  constructor(code: LlavaRadErrorCode, message: string, options: LlavaRadErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    Object.defineProperty(this, 'name', { value: 'LlavaRadError', enumerable: false, configurable: true, writable: true });
  }
}

/** true when `e` is a LlavaRadError (optionally with the given code) */
export function isLlavaRadError(e: unknown, code?: LlavaRadErrorCode): e is LlavaRadError {
  return e instanceof LlavaRadError && (code === undefined || e.code === code);
}

const STATUS_TO_CODE: Record<string, LlavaRadErrorCode> = {
  LR_ERR_INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  LR_ERR_IO: 'IO',
  LR_ERR_BAD_GGUF: 'BAD_GGUF',
  LR_ERR_UNSUPPORTED: 'UNSUPPORTED',
  LR_ERR_OUT_OF_MEMORY: 'OUT_OF_MEMORY',
  LR_ERR_CONTEXT_FULL: 'CONTEXT_FULL',
  LR_ERR_BACKEND: 'BACKEND',
  LR_ERR_CANCELLED: 'ABORTED',
  LR_ERR_BUFFER_TOO_SMALL: 'INTERNAL',
  LR_ERR_INTERNAL: 'INTERNAL',
  DISPOSED: 'DISPOSED',
};

/** the public code for an engine status name ("LR_ERR_IO" -> "IO"); unknown names give INTERNAL */
export function codeForStatus(status: string): LlavaRadErrorCode {
  return STATUS_TO_CODE[status] ?? 'INTERNAL';
}

/**
 * Converts anything the native addon threw or rejected with into a LlavaRadError. Errors the addon
 * raises carry `code` = an lr_status name or "DISPOSED"; TypeErrors/RangeErrors are argument errors.
 */
export function fromNative(e: unknown): LlavaRadError {
  if (e instanceof LlavaRadError) return e;
  if (e instanceof Error) {
    const rawCode: unknown = (e as Error & { code?: unknown }).code;
    const status = typeof rawCode === 'string' ? rawCode : undefined;
    let code: LlavaRadErrorCode;
    if (status !== undefined && status in STATUS_TO_CODE) code = STATUS_TO_CODE[status]!;
    else if (e instanceof TypeError || e instanceof RangeError) code = 'INVALID_ARGUMENT';
    else code = 'INTERNAL';
    return new LlavaRadError(code, e.message, { cause: e, status: status?.startsWith('LR_') ? status : undefined });
  }
  return new LlavaRadError('INTERNAL', `unexpected non-error thrown: ${String(e)}`, { cause: e });
}

/** a short description of a value for "..., got X" messages */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'number': return Number.isNaN(v) ? 'NaN' : String(v);
    case 'string': return v.length > 60 ? `a string of length ${v.length}` : JSON.stringify(v);
    case 'boolean': return String(v);
    case 'bigint': return `${v}n`;
    case 'function': return 'a function';
    case 'symbol': return 'a symbol';
    default: break;
  }
  if (types.isProxy(v) && !Array.isArray(v)) return 'a Proxy'; // of a typed array, say: its methods refuse it
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** INVALID_ARGUMENT error "`what` must be `expected`, got `value`" */
export function invalidArgument(what: string, expected: string, value: unknown): LlavaRadError {
  return new LlavaRadError('INVALID_ARGUMENT', `${what} must be ${expected}, got ${describeValue(value)}`);
}

/**
 * IO error for a failed file operation (a full disk, a quota, no permission, a read-only file system...):
 * "`doing`: the system's message", keeping the system error as the cause. A LlavaRadError passes through.
 */
export function ioError(e: unknown, doing: string): LlavaRadError {
  if (e instanceof LlavaRadError) return e;
  return new LlavaRadError('IO', `${doing}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** ABORTED error for an AbortSignal (keeps the signal's reason as the cause) */
export function abortedError(signal?: AbortSignal, what = 'the operation'): LlavaRadError {
  const reason: unknown = signal?.reason;
  const detail = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : '';
  return new LlavaRadError('ABORTED', `${what} was aborted${detail}`, { cause: reason });
}
