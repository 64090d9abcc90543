// The page at "/": pick or drop a PNG, JPEG or DICOM file, see it as the model gets it (the 518x518 crop
// from POST /v1/preview), type a reason, watch the findings stream in from POST /v1/findings, see the
// timings. One self-contained document: no CDN, no external font, so it works offline on a hospital network.

export const PAGE_STYLE = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.4; }
body { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
.notice { border-left: .3rem solid #c60; padding: .4rem .8rem; background: rgba(200,100,0,.1); }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; }
@media (max-width: 40rem) { .grid { grid-template-columns: 1fr; } }
#drop { display: block; border: .15rem dashed #888; border-radius: .5rem; padding: 1.2rem; text-align: center; cursor: pointer; }
#drop.over, #drop:focus-within { border-color: #06c; outline: .15rem solid #06c; outline-offset: .15rem; }
#file { position: absolute; width: 1px; height: 1px; opacity: 0; }
#preview { width: 100%; max-width: 518px; aspect-ratio: 1; object-fit: contain; background: #000; display: block; margin-top: .5rem; }
textarea { width: 100%; box-sizing: border-box; font: inherit; }
button { font: inherit; padding: .4rem 1.2rem; margin-top: .5rem; }
button:focus-visible, textarea:focus-visible, input:focus-visible { outline: .15rem solid #06c; outline-offset: .15rem; }
#findings { white-space: pre-wrap; min-height: 6rem; border: 1px solid #888; border-radius: .3rem; padding: .6rem; }
#status:empty { display: none; }
#status { color: #b00; font-weight: 600; }
table { border-collapse: collapse; } td, th { padding: .1rem .6rem; text-align: left; } td { font-variant-numeric: tabular-nums; text-align: right; }
`;

export const PAGE_SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
let chosen = null;
const authHeaders = () => { const k = $('key').value; return k ? { authorization: 'Bearer ' + k } : {}; };
const say = (msg) => { $('status').textContent = msg; };
async function errorText(res) {
  try { const j = await res.json(); return j.error.code + ': ' + j.error.message; } catch { return 'HTTP ' + res.status; }
}
async function choose(file) {
  if (!file) return;
  chosen = file;
  say('');
  $('chosen').textContent = file.name + ' (' + Math.round(file.size / 1024) + ' KiB)';
  $('preview').removeAttribute('src');
  const body = new FormData();
  body.append('image', file, file.name);
  const res = await fetch('/v1/preview', { method: 'POST', body, headers: authHeaders() });
  if (!res.ok) { say(await errorText(res)); return; }
  $('preview').src = URL.createObjectURL(await res.blob());
  $('preview').alt = 'the 518x518 image the model reads, made from ' + file.name;
}
function showTimings(record, firstTokenMs) {
  const t = record.timings_ms || {};
  const rows = [['preprocess', t.preprocess], ['vision', t.vision], ['queue', t.queue], ['prompt', t.prompt], ['decode', t.decode],
    ['total (server)', t.total], ['first token (page)', firstTokenMs]];
  const tbody = $('timings');
  tbody.textContent = '';
  for (const [name, ms] of rows) {
    if (ms === undefined || ms === null) continue;
    const tr = document.createElement('tr');
    const th = document.createElement('th'); th.scope = 'row'; th.textContent = name;
    const td = document.createElement('td'); td.textContent = ms.toFixed(1) + ' ms';
    tr.append(th, td); tbody.append(tr);
  }
  const n = (record.tokens || []).length;
  $('tokens').textContent = n + ' tokens' + (t.decode ? ', ' + (n / (t.decode / 1000)).toFixed(1) + ' tokens/s decoding' : '') +
    (record.warnings && record.warnings.length ? '. Warnings: ' + record.warnings.join('; ') : '');
}
async function run(ev) {
  ev.preventDefault();
  if (!chosen) { say('Pick or drop an image or DICOM file first.'); $('file').focus(); return; }
  say('');
  const out = $('findings');
  out.textContent = ''; out.dataset.state = 'running'; out.dataset.tokens = '0'; $('go').disabled = true;
  const body = new FormData();
  body.append('image', chosen, chosen.name);
  body.append('reason', $('reason').value);
  const t0 = performance.now();
  let first = null, started = false, streamed = 0;
  try {
    const res = await fetch('/v1/findings', { method: 'POST', body, headers: { accept: 'text/event-stream', ...authHeaders() } });
    if (!res.ok) throw new Error(await errorText(res));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf('\\n\\n')) >= 0) {
        const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
        let event = 'message', data = '';
        for (const line of block.split('\\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        const msg = JSON.parse(data);
        if (event === 'token') {
          if (first === null) first = performance.now() - t0;
          out.dataset.tokens = String(++streamed);
          const text = started ? msg.text : msg.text.trimStart();
          if (text) { started = true; out.textContent += text; }
        } else if (event === 'record') {
          out.textContent = msg.findings;
          out.dataset.state = 'done';
          showTimings(msg, first);
        } else if (event === 'error') {
          throw new Error(msg.error.code + ': ' + msg.error.message);
        }
      }
    }
    if (out.dataset.state !== 'done') throw new Error('the stream ended before the findings were complete');
  } catch (e) {
    out.dataset.state = 'error';
    say(e.message);
  } finally {
    $('go').disabled = false;
  }
}
$('file').addEventListener('change', () => choose($('file').files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); choose(e.dataTransfer.files[0]); });
$('form').addEventListener('submit', run);
`;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function pageHtml(modelId: string, notice: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLaVA-Rad findings</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<main>
<h1>LLaVA-Rad findings</h1>
<p class="notice" id="notice"><strong>Research use only.</strong> ${escapeHtml(notice)}</p>
<form id="form" class="grid">
  <section aria-labelledby="in-h">
    <h2 id="in-h">Study</h2>
    <label id="drop" for="file">
      <input id="file" type="file" accept=".png,.jpg,.jpeg,.dcm,.dicom,image/png,image/jpeg,application/dicom">
      Drop a frontal chest X-ray here (PNG, JPEG or DICOM), or press Enter / click to pick one.
      <br><span id="chosen" aria-live="polite"></span>
    </label>
    <img id="preview" alt="no image chosen yet">
    <p><label for="reason">Reason for the exam (optional)</label>
    <textarea id="reason" rows="2" placeholder="e.g. Shortness of breath, rule out pneumonia"></textarea></p>
    <details><summary>API key</summary><label for="key">Key (if the server was started with --api-key)</label>
    <input id="key" type="password" autocomplete="off"></details>
    <button id="go" type="submit">Write findings</button>
  </section>
  <section aria-labelledby="out-h">
    <h2 id="out-h">Findings <small>(${escapeHtml(modelId)})</small></h2>
    <div id="findings" role="status" aria-live="polite" data-state="idle"></div>
    <p id="status" role="alert"></p>
    <p id="tokens"></p>
    <table><caption>Timings</caption><tbody id="timings"></tbody></table>
  </section>
</form>
</main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
