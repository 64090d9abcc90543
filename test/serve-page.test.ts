// The page at "/" driven in Debian's Chromium through playwright-core (no browser download): pick a PNG, see
// the model's 518x518 crop, type a reason, watch the findings stream in; they equal the API's for the same
// image and reason. A DICOM is previewed after the same conversion the model gets. Keyboard only: the file
// input and the button are reachable with Tab. Screenshot: test/.fixtures/output/serve-page.png (git-ignored).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlavaRad } from '../lib/index.js';
import type { PredictionRecord } from '../lib/batch/record.js';
import { preprocessImageU8 } from '../lib/image/preprocess.js';
import { DICOM, form, loadTinyLlavaRad, PORTRAIT_PNG, serve, type Served } from './helpers/serve-http.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), '.fixtures', 'output');
const REASON = 'Dyspnea';

let model: LlavaRad;
let s: Served;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH; this test does not skip`);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  model = await loadTinyLlavaRad(2, 32);
  s = await serve({ model, concurrency: 2, maxTokens: 32 });
});
afterAll(async () => {
  await browser?.close();
  await s?.close();
  await model?.dispose();
});

describe('the page', () => {
  it('upload, reason, streamed findings equal to the API\'s; timings and the research-use notice; a screenshot', async () => {
    const api = (await (await fetch(`${s.url}/v1/findings`, { method: 'POST', body: form(PORTRAIT_PNG, { reason: REASON }) })).json()) as PredictionRecord;
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const external: string[] = [];
    page.on('request', (r) => { if (!r.url().startsWith(s.url) && !r.url().startsWith('blob:')) external.push(r.url()); });
    const consoleErrors: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    await page.goto(`${s.url}/`);
    expect(await page.textContent('#notice'), 'the research-use notice is shown').toMatch(/research use only/i);

    // keyboard: Tab reaches the file input first, then (past the reason) the submit button
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('file');

    await page.setInputFiles('#file', PORTRAIT_PNG);
    await page.waitForFunction(() => (document.getElementById('preview') as HTMLImageElement).naturalWidth > 0);
    expect(await page.evaluate(() => (document.getElementById('preview') as HTMLImageElement).naturalWidth), 'the preview is the 518 crop').toBe(518);
    await page.fill('#reason', REASON);
    await page.focus('#go');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#findings[data-state="done"]', { timeout: 120_000 });
    const shown = await page.textContent('#findings');
    expect(shown, 'the page shows the API\'s findings for the same image and reason').toBe(api.findings);
    expect(await page.getAttribute('#findings', 'data-tokens'), 'the page read every token as its own streamed event').toBe(String(api.tokens!.length));
    expect(await page.textContent('#timings')).toMatch(/decode[\s\S]*ms/);
    expect(await page.textContent('#tokens')).toContain(`${api.tokens!.length} tokens`);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'serve-page.png'), fullPage: true });
    expect(external, 'no request leaves the server (no CDN, no font)').toEqual([]);
    expect(consoleErrors, 'no console errors (CSP included)').toEqual([]);
    await page.close();
  });

  it('a DICOM is shown after the same conversion the model gets (the preview equals preprocessImageU8\'s crop)', async () => {
    const page = await browser.newPage();
    await page.goto(`${s.url}/`);
    await page.setInputFiles('#file', DICOM);
    await page.waitForFunction(() => (document.getElementById('preview') as HTMLImageElement).naturalWidth > 0);
    const pixels = await page.evaluate(() => {
      const img = document.getElementById('preview') as HTMLImageElement;
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext('2d')!;
      ctx.drawImage(img, 0, 0);
      return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
    });
    const crop = await preprocessImageU8(readFileSync(DICOM));
    expect(pixels.length).toBe(518 * 518 * 4);
    let diff = 0;
    for (let i = 0, j = 0; j < crop.data.length; i += 4, j += 3) {
      for (let k = 0; k < 3; k++) diff = Math.max(diff, Math.abs(pixels[i + k]! - crop.data[j + k]!));
    }
    expect(diff, 'largest difference between the page\'s preview and the model\'s 8-bit crop (lossless PNG: 0)').toBe(0);
    await page.close();
  });
});
