// What the server answers when a connection fails below the routes (Node's 'clientError'): a request not
// received within the request timeout (408), headers over Node's limit (431), bytes that are not HTTP (400).
// The answer has the API's error shape, the connection is then closed, and the error is counted in /metrics.

import type { Socket } from 'node:net';
import { errorBody, type ServeErrorCode } from './http-errors.js';
import type { ServeMetrics } from './metrics.js';

interface ClientError {
  status: number;
  reason: string;
  code: ServeErrorCode;
  message: string;
}

function classify(err: Error & { code?: string }, requestTimeoutMs: number): ClientError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { status: 408, reason: 'Request Timeout', code: 'REQUEST_TIMEOUT', message: `the request (headers and body) did not arrive whole within ${requestTimeoutMs} ms` };
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return { status: 431, reason: 'Request Header Fields Too Large', code: 'PAYLOAD_TOO_LARGE', message: 'the request headers are over the limit (16 KiB)' };
  }
  return { status: 400, reason: 'Bad Request', code: 'INVALID_ARGUMENT', message: `not a valid HTTP/1.1 request (${err.code ?? err.message})` };
}

export function clientErrorHandler(metrics: ServeMetrics, requestTimeoutMs: number) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    // a reset connection: nobody to answer
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const e = classify(err, requestTimeoutMs);
    metrics.errors.inc({ code: e.code });
    if (socket.writable) {
      const body = JSON.stringify(errorBody(e.code, e.message));
      socket.write(`HTTP/1.1 ${e.status} ${e.reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  };
}
