// The HTTP server: a fastify app around one loaded LlavaRad shared by every request (the library batches the
// studies in flight continuously, as `batch` does). createServer builds it without listening, so tests start
// it on port 0 and close it; drain() is the SIGTERM path.

import type { ServerOptions as HttpServerOptions } from 'node:http';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance } from 'fastify';
import { invalidArgument } from '../errors.js';
import type { HighBitDepthMode } from '../image/decode.js';
import { DEFAULT_MAX_PIXELS } from '../image/decode.js';
import type { LlavaRad } from '../llava-rad.js';
import type { ModelIdentity } from '../batch/record.js';
import { modelIdentity } from '../batch/identity.js';
import { Admission } from './admission.js';
import { installApiKey } from './auth.js';
import { findingsRoute } from './findings.js';
import { clientErrorHandler, connectRefused, expectationFailed } from './client-errors.js';
import { ServeError, toHttpError } from './http-errors.js';
import { ServeMetrics } from './metrics.js';
import { openaiRoute } from './openai.js';
import { pageRoutes } from './page.js';
import { installRequestLog, noteRequest } from './request-log.js';
import { statusRoutes } from './status.js';
import { StudyRunner } from './study.js';
import { defaultUploadBudget, installUploadBudget, UploadBudget } from './upload-budget.js';

export interface ServeOptions {
  /** the loaded model; its `parallel` should equal `concurrency` */
  model: LlavaRad;
  /** the name /v1/models lists and completions carry (default "llava-rad") */
  modelId?: string;
  /** studies decoded at once (default 4); should be the model's `parallel` */
  concurrency?: number;
  /** studies that may wait beyond those (default 16); more get 429 */
  queue?: number;
  /** when set, every route but GET / and GET /health needs it */
  apiKey?: string;
  /** per-request limit in ms, admission to answer (default 300000) */
  timeoutMs?: number;
  /**
   * how long a client may take to send a whole request, headers and body, in ms (default 120000; 0: no limit,
   * for a reverse proxy that enforces its own); past it the connection gets 408 and is closed. Without it a
   * client that sends headers, then its body a byte at a time (or never), holds its connection for ever.
   */
  requestTimeoutMs?: number;
  /** most bytes of an image file (default 64 MiB); a JSON body may be 4/3 of it (base64) */
  maxImageBytes?: number;
  /**
   * most bytes of request bodies held at once (default 1 GiB, or a quarter of V8's heap limit if less; never
   * less than one body of the largest size); a request past it is refused with 429 before its body is read
   */
  uploadBudgetBytes?: number;
  /** most pixels of an image, checked from its header before decoding (default 50,000,000) */
  maxPixels?: number;
  /** most tokens a request may ask for, and the default (default 256) */
  maxTokens?: number;
  highBitDepth?: HighBitDepthMode;
  dicomWindow?: boolean;
  skipLateral?: boolean;
  /** the KV cache option the model was loaded with, for the records (default "auto") */
  kvType?: string;
  /** the device name for the records (default the decoder's backend) */
  device?: string;
  /** the model's identity for the records (default: hashed from its GGUF files now) */
  identity?: ModelIdentity;
  /** one JSON line per request (default: none) */
  log?: (line: string) => void;
}

export interface LlavaRadServer {
  app: FastifyInstance;
  metrics: ServeMetrics;
  admission: Admission;
  /** request bodies held now, and the most allowed */
  uploads: UploadBudget;
  /** refuse new requests (503), let the ones in flight finish for up to graceMs, cancel the rest, close */
  drain(graceMs: number): Promise<void>;
}

/** Node's default time limit for a request's headers */
const HEADERS_TIMEOUT_MS = 60_000;
/** the shortest interval between Node's checks of the request timeouts */
const MIN_CHECK_INTERVAL_MS = 100;

function positiveInt(v: number | undefined, name: string, dflt: number, lo: number, hi: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < lo || v > hi) throw invalidArgument(name, `an integer from ${lo} to ${hi}`, v);
  return v;
}

export async function createServer(o: ServeOptions): Promise<LlavaRadServer> {
  if (o === null || typeof o !== 'object' || o.model === undefined) throw invalidArgument('options.model', 'a loaded LlavaRad', o?.model);
  const concurrency = positiveInt(o.concurrency, 'concurrency', 4, 1, 256);
  const queue = positiveInt(o.queue, 'queue', 16, 0, 100_000);
  const maxImageBytes = positiveInt(o.maxImageBytes, 'maxImageBytes', 64 << 20, 1024, 1 << 30);
  const maxTokens = positiveInt(o.maxTokens, 'maxTokens', 256, 1, 1 << 16);
  const timeoutMs = positiveInt(o.timeoutMs, 'timeoutMs', 300_000, 1, 86_400_000);
  const requestTimeoutMs = positiveInt(o.requestTimeoutMs, 'requestTimeoutMs', 120_000, 0, 86_400_000);
  if (o.apiKey !== undefined && (typeof o.apiKey !== 'string' || o.apiKey === '')) throw invalidArgument('apiKey', 'a non-empty string', o.apiKey);
  const modelId = o.modelId ?? 'llava-rad';
  const identity = o.identity ?? (await modelIdentity(o.model.files));
  const admission = new Admission(concurrency, queue);
  const metrics = new ServeMetrics({ inFlight: () => admission.inFlight, queued: () => admission.queued, capacity: () => admission.capacity, draining: () => admission.draining });
  const shutdown = new AbortController();
  const settings = {
    maxTokens, timeoutMs,
    maxPixels: o.maxPixels ?? DEFAULT_MAX_PIXELS,
    highBitDepth: o.highBitDepth ?? 'msb',
    dicomWindow: o.dicomWindow ?? false,
    skipLateral: o.skipLateral ?? false,
    kvType: o.kvType ?? 'auto',
    device: o.device ?? o.model.decoder.info.backend,
  };
  const runner = new StudyRunner(o.model, identity, settings, admission, metrics, shutdown.signal);

  // Node checks its connections against the request and header timeouts every connectionsCheckingInterval ms
  // (30 s by default), and refuses a header timeout longer than the request timeout. A request without a Host
  // header is served (Node would answer 400 itself, without the API's error shape; no route needs the host).
  const nodeHttp: HttpServerOptions = {
    requireHostHeader: false,
    ...(requestTimeoutMs > 0 ? {
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeoutMs),
      connectionsCheckingInterval: Math.min(30_000, Math.max(MIN_CHECK_INTERVAL_MS, Math.floor(requestTimeoutMs / 4))),
    } : {}),
  };
  const bodyLimit = Math.ceil((maxImageBytes * 4) / 3) + (1 << 20); // base64 image + the other fields
  const uploads = new UploadBudget(Math.max(bodyLimit, positiveInt(o.uploadBudgetBytes, 'uploadBudgetBytes', defaultUploadBudget(), 1 << 20, 2 ** 40)));
  const app = Fastify({
    logger: false,
    bodyLimit,
    return503OnClosing: false, // our own 503 (SHUTTING_DOWN) below
    forceCloseConnections: 'idle',
    requestTimeout: requestTimeoutMs,
    clientErrorHandler: clientErrorHandler(metrics, requestTimeoutMs),
    http: nodeHttp,
  });
  // an Expect header other than 100-continue: Node answers 417 itself unless asked, so answer it in the API's shape
  app.server.on('checkExpectation', (req, res) => expectationFailed(req, res, metrics));
  // CONNECT (a proxy's method): Node closes the connection without a word unless asked
  app.server.on('connect', (req, socket) => connectRefused(req, socket, metrics));
  app.removeContentTypeParser('text/plain'); // multipart or JSON only: anything else is 415
  installRequestLog(app, metrics, o.log ?? (() => {}));
  app.addHook('onRequest', async () => {
    if (admission.draining) throw new ServeError('SHUTTING_DOWN', 'the server is shutting down', { connection: 'close', 'retry-after': '5' });
  });
  if (o.apiKey !== undefined) installApiKey(app, o.apiKey);
  installUploadBudget(app, uploads, bodyLimit);
  await app.register(multipart, { limits: { fileSize: maxImageBytes, files: 1, fields: 16, fieldSize: 64 << 10, parts: 20 } });
  app.setErrorHandler(async (error, request, reply) => {
    const e = toHttpError(error);
    noteRequest(request, { code: e.body.error.code });
    return reply.code(e.status).headers(e.headers).send(e.body);
  });
  app.setNotFoundHandler(async (request) => {
    throw new ServeError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]} (see GET / and the /v1 routes)`);
  });

  findingsRoute(app, runner);
  openaiRoute(app, runner, modelId);
  statusRoutes(app, admission, metrics, modelId, Date.now());
  pageRoutes(app, settings, modelId);

  const drain = async (graceMs: number) => {
    admission.startDraining();
    const closed = app.close(); // stops listening; connections end as their responses do
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([admission.idle(), graceOver]);
    clearTimeout(timer);
    if (admission.inFlight > 0) shutdown.abort(new ServeError('SHUTTING_DOWN', 'the shutdown grace period is over'));
    await admission.idle();
    app.server.closeIdleConnections();
    await closed;
  };
  return { app, metrics, admission, uploads, drain };
}
