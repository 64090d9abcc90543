// Seed files that exist only after a conversion: made once per campaign by the parent, with the library
// itself, into a folder the children read through FUZZ_SEEDS.
//
//   chexbert-f32.gguf, chexbert-f16.gguf   the tiny CheXbert checkpoint (test/fixtures/chexbert)
//   radgraph-f32.gguf                       the tiny RadGraph archive (test/fixtures/radgraph/model)
//   clip/                                   the tiny release converted with its text tower: clip + vision GGUFs
//   search.lrindex, mixed.lrindex           retrieval indexes (test/fixtures/retrieval/search.json's vectors)
//   batch/                                  a batch job cut short: images, manifest.jsonl (7 studies, two of
//                                           which fail), predictions.jsonl (`llava-rad batch` over the first 4)
//   build/                                  an index build cut short: manifest.jsonl (5 studies), part.lrindex
//                                           (built from the first 2), x.lrindex.journal (a build of all 5 over
//                                           part.lrindex, stopped after its first batch)
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { root } from './bundle.mjs';

const fx = (...p) => path.join(root, 'test', 'fixtures', ...p);

export const SEED_FILES = {
  chexbert: ['chexbert-f32.gguf', 'chexbert-f16.gguf'],
  radgraph: ['radgraph-f32.gguf'],
  index: ['search.lrindex', 'mixed.lrindex'],
};

/** the tiny decoder and vision GGUFs the batch seed was made with (test/.fixtures is made by `npm test`) */
export const BATCH_MODEL = {
  decoder: path.join(root, 'test', '.fixtures', 'tiny-llama-base-q8_0-303570da.gguf'),
  vision: fx('vision', 'tiny-vision-f32.gguf'),
  maxTokens: 4,
};

/** the studies of the batch and build seeds: [id, fixture image or a file that is no image, reason, reference] */
const STUDIES = [
  ['s0', 'findings/radiograph-grey-900x1100.png', 'Cough.', 'No acute cardiopulmonary process.'],
  ['s1', 'findings/square-rgb-600x600.png', null, 'Mild cardiomegaly. No effusion.'],
  ['s2', 'images/grey_518x777.png', 'Fever.', null],
  ['s3', null, null, 'The image is missing.'], // fails: no such file
  ['s4', 'images/rgb_600x700.png', null, 'Lungs are clear.'],
  ['s5', 'images/palette_280x310.png', 'Dyspnea.', 'Small left pleural effusion.'],
  ['s6', 'text', null, null], // fails: not an image
];

function writeStudies(dir, studies) {
  const img = path.join(dir, 'img');
  mkdirSync(img, { recursive: true });
  const rows = studies.map(([id, image, reason, reference]) => {
    const name = image === null ? 'missing.png' : image === 'text' ? 'notes.png' : path.basename(image);
    if (image === 'text') writeFileSync(path.join(img, name), 'not an image\n');
    else if (image !== null) copyFileSync(fx(image), path.join(img, name));
    return JSON.stringify({ id, image: `img/${name}`, ...(reason ? { reason } : {}), ...(reference ? { reference } : {}) });
  });
  return rows;
}

/** runs the CLI in this process; throws unless it ends with one of the `expected` exit codes */
async function cli(L, argv, expected) {
  let err = '';
  const code = await L.cliMain(argv, { out: () => {}, err: (s) => void (err += s) });
  if (!expected.includes(code)) throw new Error(`llava-rad ${argv[0]} ended with ${code}: ${err}`);
}

/** the batch/ and build/ seeds (see the top of this file) */
async function makeJobSeeds(L, dir, clip) {
  const batch = path.join(dir, 'batch');
  const rows = writeStudies(batch, STUDIES);
  writeFileSync(path.join(batch, 'manifest.jsonl'), rows.join('\n') + '\n');
  writeFileSync(path.join(batch, 'part.jsonl'), rows.slice(0, 4).join('\n') + '\n');
  await cli(L, ['batch', path.join(batch, 'part.jsonl'), '--model', BATCH_MODEL.decoder, '--mmproj', BATCH_MODEL.vision, '--out', path.join(batch, 'predictions.jsonl'),
    '--max-tokens', String(BATCH_MODEL.maxTokens), '--threads', '1', '--quiet'], [3]);

  const build = path.join(dir, 'build');
  const good = writeStudies(build, STUDIES.filter(([, image]) => image !== null && image !== 'text'));
  writeFileSync(path.join(build, 'manifest.jsonl'), good.join('\n') + '\n');
  writeFileSync(path.join(build, 'part.jsonl'), good.slice(0, 2).join('\n') + '\n');
  const embedder = await L.loadClip({ clip: clip.clip, vision: clip.vision, threads: 1 });
  try {
    await L.buildIndex(path.join(build, 'part.jsonl'), embedder, { out: path.join(build, 'part.lrindex') });
    copyFileSync(path.join(build, 'part.lrindex'), path.join(build, 'x.lrindex'));
    const ac = new AbortController();
    const stopped = L.buildIndex(path.join(build, 'manifest.jsonl'), embedder, { out: path.join(build, 'x.lrindex'), batchSize: 2, signal: ac.signal, onProgress: () => ac.abort() });
    await stopped.then(() => {
      throw new Error('the index build seed was not stopped');
    }, (e) => {
      if (!L.isLlavaRadError(e, 'ABORTED')) throw e;
    });
  } finally {
    await embedder.dispose();
  }
}

/** the folder of seeds the children were given */
export function seedsDir() {
  const d = process.env.FUZZ_SEEDS;
  if (!d) throw new Error('FUZZ_SEEDS is not set (bench/fuzz.mjs makes the seeds before it starts the children)');
  return d;
}

/** the CLIP GGUFs of the converted tiny release: { clip, vision } */
export function clipSeed(dir = seedsDir()) {
  const folder = path.join(dir, 'clip');
  const files = readdirSync(folder);
  const pick = (re) => path.join(folder, files.find((f) => re.test(f)));
  return { clip: pick(/clip-text.*\.gguf$/), vision: pick(/vision.*\.gguf$/) };
}

/** Makes every seed with the bundle's library `L` (about 20 s on 2 cores). */
export async function makeSeeds(L, dir, log = () => {}) {
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  const { bertBaseUncasedVocabText } = L;
  const bertVocab = L.WordPieceVocab.fromText(bertBaseUncasedVocabText());
  const heads = JSON.parse(readFileSync(fx('chexbert', 'goldens.json'), 'utf8')).hparams.heads;
  for (const type of ['f32', 'f16']) {
    await L.convertChexbert(fx('chexbert', 'chexbert-tiny.pth'), bertVocab, path.join(dir, `chexbert-${type}.gguf`), { type, headCount: heads });
  }
  const rgVocab = L.WordPieceVocab.fromText(readFileSync(fx('radgraph', 'model', 'vocab.txt'), 'utf8'));
  await L.convertRadgraph(fx('radgraph', 'model', 'radgraph-tiny.tar.gz'), path.join(dir, 'radgraph-f32.gguf'), { vocab: rgVocab, headCount: 4 });
  await L.convertRelease({
    base: fx('release', 'vicuna'), adapter: fx('release', 'llava-rad'), out: path.join(dir, 'clip'), type: 'q8_0', visionType: 'f16',
    clipText: fx('release', 'biomedbert'), threads: 1,
  });
  const g = JSON.parse(readFileSync(fx('retrieval', 'search.json'), 'utf8'));
  const rows = (vs) => (put) => vs.forEach((v) => put(Float32Array.from(v)));
  L.writeIndexFile(path.join(dir, 'search.lrindex'), { modelId: 'fuzz-search', dim: g.dim, ids: g.ids, kinds: g.kinds, vectors: rows(g.vectors) });
  // the same vectors under odd but valid ids (unicode, the longest an id may be), half of them twice as image and text
  const ids = g.ids.map((id, i) => (i % 3 === 0 ? `é🙂${id}` : i % 3 === 1 ? id.padEnd(L.INDEX_LIMITS.idBytes, 'x') : id));
  const half = ids.slice(0, Math.ceil(ids.length / 2));
  L.writeIndexFile(path.join(dir, 'mixed.lrindex'), {
    modelId: 'fuzz-mixed', dim: g.dim, ids: [...ids, ...half], kinds: [...ids.map(() => 'image'), ...half.map(() => 'text')],
    vectors: rows([...g.vectors, ...g.vectors.slice(0, half.length)]),
  });
  for (const f of [...SEED_FILES.chexbert, ...SEED_FILES.radgraph, ...SEED_FILES.index]) {
    if (!existsSync(path.join(dir, f))) throw new Error(`seed ${f} was not made`);
  }
  await makeJobSeeds(L, dir, clipSeed(dir));
  for (const f of ['batch/predictions.jsonl', 'build/x.lrindex.journal', 'build/part.lrindex']) {
    if (!existsSync(path.join(dir, f))) throw new Error(`seed ${f} was not made`);
  }
  log(`[fuzz] seeds made in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return dir;
}
