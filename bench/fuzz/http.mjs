// HTTP request mutation for `serve`: requests as curl and OpenAI's clients send them (multipart findings, JSON
// findings with a base64 image, chat completions, the GET routes), then changed at every level: the request line
// (method, path, version), the headers (content type and boundary, lengths that lie, chunked framing, duplicates,
// huge values), the JSON body as JSON, multipart parts, and raw bytes. Each input is the bytes written to one TCP
// connection.
import { interesting, mutateBytes } from './bytes.mjs';
import { jsonBytes, mutateJsonValue } from './json.mjs';

const CRLF = '\r\n';

function request(method, url, headers, body = Buffer.alloc(0)) {
  return { method, url, version: 'HTTP/1.1', headers: [['Host', '127.0.0.1'], ...headers], body };
}

/** a multipart/form-data body of these parts ([name, value, filename?]) */
function multipart(boundary, parts) {
  const chunks = [];
  for (const [name, value, filename] of parts) {
    const disp = `form-data; name="${name}"${filename !== undefined ? `; filename="${filename}"` : ''}`;
    chunks.push(Buffer.from(`--${boundary}${CRLF}Content-Disposition: ${disp}${CRLF}${filename !== undefined ? `Content-Type: application/octet-stream${CRLF}` : ''}${CRLF}`), Buffer.from(value), Buffer.from(CRLF));
  }
  chunks.push(Buffer.from(`--${boundary}--${CRLF}`));
  return Buffer.concat(chunks);
}

/** the requests a well-behaved client sends; `image` is a small radiograph */
export function templates(image) {
  const b64 = image.toString('base64');
  const boundary = '----llavaradfuzz7MA4YWxkTrZu0gW';
  const json = (v) => ({ value: v, bytes: Buffer.from(JSON.stringify(v)) });
  const chat = { model: 'llava-rad', max_tokens: 2, messages: [{ role: 'user', content: [{ type: 'text', text: 'Cough.' }, { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${b64}` } }] }] };
  return [
    { kind: 'multipart', boundary, parts: [['image', image, 'x.jpg'], ['reason', 'Cough.'], ['max_tokens', '2']], url: '/v1/findings' },
    { kind: 'json', url: '/v1/findings', ...json({ image: b64, reason: 'Cough.', max_tokens: 2 }) },
    { kind: 'json', url: '/v1/findings', accept: 'text/event-stream', ...json({ image: `data:image/jpeg;base64,${b64}`, max_tokens: 2 }) },
    { kind: 'json', url: '/v1/chat/completions', ...json(chat) },
    { kind: 'json', url: '/v1/chat/completions', ...json({ ...chat, stream: true }) },
    { kind: 'get', url: '/health' }, { kind: 'get', url: '/metrics' }, { kind: 'get', url: '/v1/models' }, { kind: 'get', url: '/' },
  ];
}

const PATHS = ['/v1/findings', '/v1/chat/completions', '/v1/findings/', '//v1/findings', '/v1/findings?x=1&x=2', '/v1/%2e%2e/health', '/%00', '/v1/findings#frag',
  `/${'a'.repeat(9000)}`, '*', 'http://127.0.0.1/v1/findings', '/v1/models?' + 'q=1&'.repeat(2000)];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'TRACE', 'CONNECT', 'FOO', 'post', ''];
const TYPES = ['application/json', 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data',
  'multipart/form-data; boundary=', 'multipart/form-data; boundary="x"', 'application/json, multipart/form-data', 'image/png', '', 'application/JSON', 'multipart/mixed; boundary=z'];

function build(t, rng) {
  if (t.kind === 'get') return request('GET', t.url, []);
  if (t.kind === 'multipart') {
    const parts = t.parts.map((p) => [...p]);
    if (rng.chance(0.5)) {
      const op = rng.int(6);
      rng.note(`part op ${op}`);
      if (op === 0) parts.splice(rng.int(parts.length), 1);
      else if (op === 1) for (let i = rng.pick([2, 30]); i > 0; i--) parts.push(['reason', 'x']);
      else if (op === 2) parts.push(['image', Buffer.from('second file'), 'y.png']);
      else if (op === 3) parts[rng.int(parts.length)][0] = rng.pick(['', '__proto__', 'x'.repeat(300), 'file', 'image"; filename="z', 'max_tokens']);
      else if (op === 4) parts.push([rng.pick(['max_tokens', 'ignore_eos', 'reason']), rng.pick(['', '-1', '1e9', 'true', 'x'.repeat(70_000), '\u0000'])]);
      else parts[0][2] = rng.pick(['', '../../etc/passwd', 'a'.repeat(2000), 'x.dcm', undefined]);
    }
    const body = multipart(t.boundary, parts);
    return request('POST', t.url, [['Content-Type', `multipart/form-data; boundary=${t.boundary}`], ['Content-Length', String(body.length)]], body);
  }
  let body = t.bytes;
  if (rng.chance(0.5)) {
    rng.note('JSON mutated');
    body = jsonBytes(mutateJsonValue(t.value, rng), rng);
  }
  const headers = [['Content-Type', 'application/json'], ['Content-Length', String(body.length)]];
  if (t.accept) headers.push(['Accept', t.accept]);
  return request('POST', t.url, headers, body);
}

function mutateRequest(r, rng) {
  const op = rng.weighted({ line: 2, header: 3, length: 2, chunked: 2, body: 2, none: 2 });
  rng.note(op);
  if (op === 'line') {
    const f = rng.int(3);
    if (f === 0) r.method = rng.pick(METHODS);
    else if (f === 1) r.url = rng.pick(PATHS);
    else r.version = rng.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 x', 'HTTP/0.9', 'HTTP/1.10', '']);
  } else if (op === 'header') {
    const f = rng.int(6);
    const ct = r.headers.find((h) => h[0] === 'Content-Type');
    if (f === 0 && ct) ct[1] = rng.pick(TYPES);
    else if (f === 1) r.headers.push([rng.pick(['Content-Type', 'Content-Length', 'Host', 'Accept', 'Authorization', 'Expect', 'Connection']), rng.pick(['', '0', 'close', '100-continue', 'text/event-stream', 'Bearer x', 'x'.repeat(20_000)])]);
    else if (f === 2) r.headers = r.headers.filter((h) => h[0] !== rng.pick(['Host', 'Content-Type', 'Content-Length']));
    else if (f === 3) for (let i = rng.pick([10, 200, 3000]); i > 0; i--) r.headers.push([`X-H${i}`, 'v']);
    else if (f === 4) r.headers.push(['Accept', rng.pick(['text/event-stream', 'application/json', '*/*', 'text/event-stream;q=0, application/json'])]);
    else r.headers.push(['Transfer-Encoding', rng.pick(['chunked', 'gzip', 'chunked, chunked', 'identity'])]);
  } else if (op === 'length') {
    const cl = r.headers.find((h) => h[0] === 'Content-Length');
    const v = rng.pick([0, r.body.length - 1, r.body.length + 1, r.body.length * 2, -1, Number(interesting(4, rng, r.body.length))]);
    if (cl) cl[1] = rng.chance(0.8) ? String(v) : rng.pick(['abc', '1e3', ' 5', '5, 5', '0x10']);
    else r.headers.push(['Content-Length', String(v)]);
  } else if (op === 'chunked') {
    r.headers = r.headers.filter((h) => h[0] !== 'Content-Length');
    r.headers.push(['Transfer-Encoding', 'chunked']);
    const parts = [];
    for (let at = 0; at < r.body.length;) {
      const n = Math.min(r.body.length - at, rng.pick([1, 7, 4096, 65536]));
      parts.push(Buffer.from(`${n.toString(16)}${CRLF}`), r.body.subarray(at, at + n), Buffer.from(CRLF));
      at += n;
    }
    parts.push(Buffer.from(rng.pick([`0${CRLF}${CRLF}`, `0${CRLF}X-Trailer: 1${CRLF}${CRLF}`, 'zz\r\n\r\n', `ffffffffffffffff${CRLF}`, ''])));
    r.rawBody = Buffer.concat(parts);
  } else if (op === 'body') {
    r.body = mutateBytes(r.body, rng);
  }
  return r;
}

function serialize(r) {
  const head = `${r.method} ${r.url} ${r.version}${CRLF}${r.headers.map(([k, v]) => `${k}: ${v}${CRLF}`).join('')}${CRLF}`;
  return Buffer.concat([Buffer.from(head, 'latin1'), r.rawBody ?? r.body]);
}

/** one mutated request: the bytes to write, and what was done */
export function mutateHttp(image, rng) {
  const t = rng.pick(templates(image));
  rng.note(`${t.kind} ${t.url}${t.accept ? ' (SSE)' : ''}`);
  let bytes = serialize(mutateRequest(build(t, rng), rng));
  if (rng.chance(0.1)) bytes = mutateBytes(bytes, rng, { hi: Math.min(bytes.length, 400) }); // the request line and headers
  // a second request on the same connection, now and then
  if (rng.chance(0.1)) bytes = Buffer.concat([bytes, serialize(request('GET', '/health', []))]);
  return bytes;
}
