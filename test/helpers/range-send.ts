// A mock server's answer to a file download, as Hugging Face's file server gives it: the whole file (200), or from
// a `Range: bytes=N-` offset (206; 416 past the end). With `cutAfter`, only that many bytes go out, then (once the
// client has had time to take them) the connection dies: an interrupted download to resume. sendBlob takes that
// count, once, from a map of file names a test fills.
import type http from 'node:http';

export function sendRange(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, cutAfter?: number): void {
  const headers: Record<string, string | number> = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m) {
    start = Number(m[1]);
    if (start >= data.length) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      return;
    }
    headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
  }
  const body = data.subarray(start);
  res.writeHead(m ? 206 : 200, { ...headers, 'content-length': body.length });
  if (cutAfter !== undefined) {
    res.write(body.subarray(0, cutAfter), () => setTimeout(() => res.socket?.destroy(), 100));
    return;
  }
  res.end(body);
}

/** sendRange for a named file, cut off once if `cutOnce` names it (the entry is used up) */
export function sendBlob(req: http.IncomingMessage, res: http.ServerResponse, blob: { name: string; data: Buffer }, cutOnce: Map<string, number>): void {
  const cut = cutOnce.get(blob.name);
  cutOnce.delete(blob.name);
  sendRange(req, res, blob.data, cut);
}
