// Request bodies to study inputs: multipart/form-data (an image or DICOM file + text fields) or JSON with the
// image as base64 (or a data: URI). Sizes are bounded before anything is decoded: the body limit by fastify
// and @fastify/multipart, the pixel limit from the image's header by the library.

import type { FastifyRequest } from 'fastify';
import { describeValue, isLlavaRadError } from '../errors.js';
import { ServeError } from './http-errors.js';

export interface ImageInput {
  image: Buffer;
  /** the upload's file name, or "upload" */
  source: string;
  /** text fields (multipart) or the JSON body's other members */
  fields: Record<string, unknown>;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DATA_URI = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+)?(;[a-z0-9-]+=[^;,]*)*;base64,/i;

/** base64 or a base64 data: URI to bytes; INVALID_ARGUMENT for anything else (remote URLs are not fetched) */
export function decodeBase64Image(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || value === '') throw new ServeError('INVALID_ARGUMENT', `${what} must be a non-empty base64 string or a data: URI, got ${describeValue(value)}`);
  let b64 = value;
  if (value.startsWith('data:')) {
    const m = DATA_URI.exec(value);
    if (!m) throw new ServeError('INVALID_ARGUMENT', `${what} must be a base64 data: URI (data:image/png;base64,...), got one that is not base64`);
    b64 = value.slice(m[0].length);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new ServeError('INVALID_ARGUMENT', `${what} must carry the image itself (base64 or a data: URI); the server fetches no URLs, got ${value.slice(0, value.indexOf(':'))}:// URL`);
  }
  b64 = b64.replace(/\s+/g, '');
  if (b64.length % 4 === 1 || !BASE64.test(b64)) throw new ServeError('INVALID_ARGUMENT', `${what} is not valid base64`);
  return Buffer.from(b64, 'base64');
}

/** the image and fields of a findings or preview request */
export async function readImageInput(request: FastifyRequest): Promise<ImageInput> {
  if (request.isMultipart()) return readMultipart(request);
  const body = request.body;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ServeError('INVALID_ARGUMENT', `the body must be multipart/form-data with an "image" file, or a JSON object {"image": base64, "reason"?: string}, got ${describeValue(body)}`);
  }
  const { image, filename, ...fields } = body as Record<string, unknown>;
  return { image: decodeBase64Image(image, '"image"'), source: typeof filename === 'string' && filename ? filename : 'upload', fields };
}

/**
 * how long the multipart parser may go without reading anything once Node has received the whole request: the
 * parser (@fastify/busboy 3.2) stops reading a body whose part without a valid Content-Disposition header holds
 * more than a few KB, and never finishes, so the request would wait for ever. A large upload being parsed reads
 * on, however long it takes.
 */
const MULTIPART_STALL_MS = 1000;

async function readMultipart(request: FastifyRequest): Promise<ImageInput> {
  const parts = readParts(request);
  parts.catch(() => undefined); // given up on below: it may never settle, or settle later
  let lastRead = Date.now();
  const onData = () => (lastRead = Date.now()); // the body is piped into the parser: each chunk it takes
  request.raw.on('data', onData);
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      // still arriving: the request timeout bounds that
      if (request.raw.complete && Date.now() - lastRead >= MULTIPART_STALL_MS) {
        reject(new ServeError('INVALID_ARGUMENT', 'a malformed multipart/form-data body: its parser stopped before the end (a part without a valid Content-Disposition header?)'));
      }
    }, 100);
  });
  try {
    return await Promise.race([parts, stalled]);
  } catch (e) {
    // the multipart parser's own errors (a body that ends before its closing boundary, a malformed part header)
    // carry no HTTP status: they are the client's, not the server's
    if (isLlavaRadError(e) || (e instanceof Error && typeof (e as Error & { statusCode?: unknown }).statusCode === 'number')) throw e;
    throw new ServeError('INVALID_ARGUMENT', `a malformed multipart/form-data body: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    clearInterval(timer);
    request.raw.off('data', onData);
  }
}

async function readParts(request: FastifyRequest): Promise<ImageInput> {
  let image: Buffer | undefined;
  let source = 'upload';
  const fields: Record<string, unknown> = {};
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (image) throw new ServeError('INVALID_ARGUMENT', 'send one image file per request, got a second file');
      if (part.fieldname !== 'image' && part.fieldname !== 'file') {
        throw new ServeError('INVALID_ARGUMENT', `the file field must be named "image" (or "file"), got "${part.fieldname}"`);
      }
      image = await part.toBuffer(); // over the file size limit: a 413 error, before any decoding
      if (part.filename) source = part.filename;
    } else {
      fields[part.fieldname] = part.value;
    }
  }
  if (!image) throw new ServeError('INVALID_ARGUMENT', 'multipart/form-data must carry the image as a file field named "image"');
  return { image, source, fields };
}

/** an optional string field */
export function optionalString(fields: Record<string, unknown>, name: string): string | null {
  const v = fields[name];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') throw new ServeError('INVALID_ARGUMENT', `"${name}" must be a string, got ${describeValue(v)}`);
  return v;
}

/** an optional integer field (a multipart field arrives as text) */
export function optionalInt(fields: Record<string, unknown>, name: string): unknown {
  const v = fields[name];
  if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) return Number(v);
  return v === '' ? undefined : v;
}

/** an optional boolean field ("true"/"false" as multipart text) */
export function optionalBool(fields: Record<string, unknown>, name: string): boolean {
  const v = fields[name];
  if (v === undefined || v === null || v === '' || v === false || v === 'false') return false;
  if (v === true || v === 'true') return true;
  throw new ServeError('INVALID_ARGUMENT', `"${name}" must be true or false, got ${describeValue(v)}`);
}
