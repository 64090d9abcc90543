// GET / (the page) and POST /v1/preview (the 518x518 crop the model reads, as PNG: a DICOM after the same
// conversion to 8 bits, any image after the same resize and crop).

import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { loadSharp } from '../image/decode.js';
import { preprocessImageU8 } from '../image/preprocess.js';
import { RESEARCH_USE_NOTICE } from '../llava-rad.js';
import { readImageInput } from './input.js';
import { PAGE_SCRIPT, PAGE_STYLE, pageHtml } from './page-html.js';
import type { StudySettings } from './study.js';

const sha = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

/** only the page's own script and style run; it talks to this server and nothing else */
const CSP = [
  "default-src 'none'",
  `script-src ${sha(PAGE_SCRIPT)}`,
  `style-src ${sha(PAGE_STYLE)}`,
  'img-src blob:',
  "connect-src 'self'",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function pageRoutes(app: FastifyInstance, settings: StudySettings, modelId: string): void {
  const html = pageHtml(modelId, RESEARCH_USE_NOTICE);
  app.get('/', async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').send(html));

  app.post('/v1/preview', async (request, reply) => {
    const { image } = await readImageInput(request);
    const crop = await preprocessImageU8(image, {
      maxPixels: settings.maxPixels, highBitDepth: settings.highBitDepth, dicomWindow: settings.dicomWindow, dicomRefuseLateral: settings.skipLateral,
    });
    const sharp = await loadSharp();
    const png = await sharp(Buffer.from(crop.data.buffer, crop.data.byteOffset, crop.data.byteLength), { raw: { width: crop.width, height: crop.height, channels: 3 } }).png().toBuffer();
    return reply.type('image/png').send(png);
  });
}
