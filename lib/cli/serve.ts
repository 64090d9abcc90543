// `llava-rad serve`: the HTTP API and the page (lib/serve/), one loaded model shared by every request.

import { contextPerStudy } from '../batch/engine.js';
import { modelIdentity } from '../batch/identity.js';
import { loadLlavaRad, type LoadLlavaRadOptions } from '../llava-rad.js';
import { defaultModelFolder } from '../pull/home.js';
import { createServer } from '../serve/server.js';
import { asUsageAsync, backendArg, IMAGE_OPTIONS, intArg, llavaRadModelArgs, parse, UsageError, type Command } from './args.js';

function modelOptions(v: Record<string, string | boolean | undefined>): LoadLlavaRadOptions {
  return llavaRadModelArgs('serve', v, defaultModelFolder());
}

function oneOf<T extends string>(v: string | boolean | undefined, flag: string, choices: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!choices.includes(v as T)) throw new UsageError(`serve: ${flag} must be one of ${choices.join(', ')}, got '${String(v)}'`);
  return v as T;
}

export const serveCommand: Command = {
  name: 'serve',
  stdoutIsLog: true,
  summary: 'an HTTP API (findings, OpenAI chat completions, metrics) and a web page (research use only)',
  usage: `Usage: llava-rad serve [--model DIR] [--host 127.0.0.1] [--port 8080] [options]
       llava-rad serve --model DECODER.gguf --mmproj VISION.gguf [options]

Routes: GET / (the page), POST /v1/findings (multipart or JSON; SSE with Accept: text/event-stream),
POST /v1/chat/completions (OpenAI-compatible), POST /v1/preview, GET /v1/models, GET /health, GET /metrics.
One JSON line per request on stdout. SIGTERM / SIGINT: no new requests, the ones in flight finish for up to
--drain-grace-ms, then the rest are cancelled. See docs/serve.md.

Options:
  -m, --model DIR|FILE    a folder written by 'llava-rad convert', or the decoder GGUF (with --mmproj);
                          default $LLAVA_RAD_MODEL, else the folder 'llava-rad pull' wrote in $LLAVA_RAD_HOME
      --mmproj FILE       the vision GGUF, when --model names the decoder GGUF
      --host H            address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)
  -p, --port N            TCP port (default 8080; 0: any free port, printed at start)
  -c, --concurrency N     studies decoded at once, batched in one decoder (default 4)
      --queue N           studies that may wait beyond those (default 16); more are refused with 429
      --api-key K         require "Authorization: Bearer K" (or X-API-Key) on the API; default $LLAVA_RAD_API_KEY
      --timeout-ms N      per-request limit (default 300000)
      --request-timeout-ms N
                          how long a client may take to send its whole request (default 120000; 0: none)
      --drain-grace-ms N  on SIGTERM, how long studies in flight may finish (default 30000)
  -n, --max-tokens N      most tokens a request may ask for, and the default (default 256)
      --max-image-mb N    most megabytes of an image file (default 64)
      --upload-budget-mb N
                          most megabytes of request bodies held at once (default 1024, or a quarter of
                          the JS heap if less); past it a request is refused with 429 before its body is read
      --max-pixels N      most pixels of an image, checked before decoding (default 50000000)
      --model-id NAME     the model name /v1/models lists (default llava-rad)
      --threads N         CPU threads (default: physical cores)
      --backend B         auto | cpu | cuda (default auto)
      --kv-type T         KV cache: auto (default), f16, f32, q8_0
      --high-bit-depth M  16-bit images to 8 bits: msb (default), minmax, pil
      --dicom-window      DICOM: apply rescale + VOI LUT / window instead of the MIMIC-CXR-JPG recipe
      --skip-lateral      DICOM: refuse lateral views instead of warning
  -h, --help              this help

Research use only: LLaVA-Rad output is not for clinical care.`,
  async run(args, io, signal) {
    const v = parse(args, {
      model: { type: 'string', short: 'm' },
      mmproj: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      concurrency: { type: 'string', short: 'c' },
      queue: { type: 'string' },
      'api-key': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'request-timeout-ms': { type: 'string' },
      'drain-grace-ms': { type: 'string' },
      'max-tokens': { type: 'string', short: 'n' },
      'max-image-mb': { type: 'string' },
      'upload-budget-mb': { type: 'string' },
      'max-pixels': { type: 'string' },
      'model-id': { type: 'string' },
      threads: { type: 'string', short: 't' },
      backend: { type: 'string' },
      'kv-type': { type: 'string' },
      ...IMAGE_OPTIONS,
    }, 'serve');
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const load = modelOptions(v);
    const host = typeof v.host === 'string' && v.host !== '' ? v.host : '127.0.0.1';
    const port = intArg(v.port, '--port', 0, 65535) ?? 8080;
    const concurrency = intArg(v.concurrency, '--concurrency', 1, 256) ?? 4;
    const queue = intArg(v.queue, '--queue', 0, 100_000) ?? 16;
    const apiKey = typeof v['api-key'] === 'string' ? v['api-key'] : process.env.LLAVA_RAD_API_KEY;
    if (apiKey === '') throw new UsageError('serve: --api-key must not be empty');
    const timeoutMs = intArg(v['timeout-ms'], '--timeout-ms', 1, 86_400_000) ?? 300_000;
    const requestTimeoutMs = intArg(v['request-timeout-ms'], '--request-timeout-ms', 0, 86_400_000) ?? 120_000;
    const graceMs = intArg(v['drain-grace-ms'], '--drain-grace-ms', 0, 86_400_000) ?? 30_000;
    const maxTokens = intArg(v['max-tokens'], '--max-tokens', 1, 4096) ?? 256;
    const maxImageBytes = (intArg(v['max-image-mb'], '--max-image-mb', 1, 1024) ?? 64) << 20;
    const uploadBudgetMb = intArg(v['upload-budget-mb'], '--upload-budget-mb', 1, 1 << 20);
    const maxPixels = intArg(v['max-pixels'], '--max-pixels', 1024, 1_000_000_000);
    const kvType = oneOf(v['kv-type'], '--kv-type', ['auto', 'f16', 'f32', 'q8_0'] as const, 'auto');
    const highBitDepth = oneOf(v['high-bit-depth'], '--high-bit-depth', ['msb', 'minmax', 'pil'] as const, 'msb');
    const threads = intArg(v.threads, '--threads', 1, 1024);
    const backend = backendArg(v.backend);

    const model = await asUsageAsync(() => loadLlavaRad({
      ...load, parallel: concurrency, contextSize: contextPerStudy(maxTokens), kvCacheType: kvType,
      ...(threads !== undefined ? { threads } : {}), ...(backend !== undefined ? { backend } : {}),
    }));
    try {
      const server = await createServer({
        model, concurrency, queue, timeoutMs, requestTimeoutMs, maxTokens, maxImageBytes, highBitDepth, kvType,
        identity: await modelIdentity(model.files),
        dicomWindow: v['dicom-window'] === true,
        skipLateral: v['skip-lateral'] === true,
        ...(maxPixels !== undefined ? { maxPixels } : {}),
        ...(uploadBudgetMb !== undefined ? { uploadBudgetBytes: uploadBudgetMb * 2 ** 20 } : {}),
        ...(apiKey !== undefined ? { apiKey } : {}),
        ...(typeof v['model-id'] === 'string' && v['model-id'] ? { modelId: v['model-id'] } : {}),
        log: (line) => io.out(line + '\n'),
      });
      await server.app.listen({ host, port });
      const addr = server.app.server.address();
      const bound = typeof addr === 'object' && addr ? addr : { address: host, port };
      io.out(JSON.stringify({ event: 'listening', url: `http://${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}/`, host: bound.address, port: bound.port, concurrency, queue, backend: model.decoder.info.backend, api_key: apiKey !== undefined }) + '\n');

      const term = new AbortController();
      const onTerm = () => term.abort();
      process.once('SIGTERM', onTerm);
      try {
        await new Promise<void>((resolve) => {
          if (signal.aborted) return resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
          term.signal.addEventListener('abort', () => resolve(), { once: true });
        });
      } finally {
        process.off('SIGTERM', onTerm);
      }
      io.out(JSON.stringify({ event: 'draining', in_flight: server.admission.inFlight, grace_ms: graceMs }) + '\n');
      await server.drain(graceMs);
      io.out(JSON.stringify({ event: 'closed' }) + '\n');
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
