// What the server answers below the routes: when a connection fails (Node's 'clientError': a request not
// received within the request timeout, 408; headers over Node's limit, 431; bytes that are not HTTP, 400), for an
// Expect header other than 100-continue (417, Node's 'checkExpectation') and for CONNECT (405, Node's 'connect').
// The answer has the API's error shape and is counted in /metrics; but for 417 the connection is then closed.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorBody, type ServeErrorCode } from './http-errors.js';
import type { ServeMetrics } from './metrics.js';

interface ClientError {
  status: number;
  reason: string;
  code: ServeErrorCode;
  message: string;
}

/** writes the answer, then closes the connection once it is out (a client still sending is not waited for) */
function closeWith(socket: Duplex, answer: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(answer, () => socket.destroy());
  setTimeout(() => socket.destroy(), 5000).unref(); // a client that does not read its answer
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
    const body = JSON.stringify(errorBody(e.code, e.message));
    closeWith(socket, `HTTP/1.1 ${e.status} ${e.reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  };
}

/** 417 for an Expect header other than 100-continue (the request is not run; the connection stays usable) */
export function expectationFailed(req: IncomingMessage, res: ServerResponse, metrics: ServeMetrics): void {
  metrics.errors.inc({ code: 'INVALID_ARGUMENT' });
  const body = JSON.stringify(errorBody('INVALID_ARGUMENT', `Expect: ${String(req.headers.expect).slice(0, 100)} is not supported (only 100-continue)`));
  res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** 405 for CONNECT (this is not a proxy); the connection is closed */
export function connectRefused(req: IncomingMessage, socket: Duplex, metrics: ServeMetrics): void {
  metrics.errors.inc({ code: 'METHOD_NOT_ALLOWED' });
  const body = JSON.stringify(errorBody('METHOD_NOT_ALLOWED', `CONNECT ${String(req.url).slice(0, 100)}: this server is not a proxy`));
  closeWith(socket, `HTTP/1.1 405 Method Not Allowed\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
}
