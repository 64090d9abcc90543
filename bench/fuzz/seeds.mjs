// Seed files that exist only after a conversion: made once per campaign by the parent, with the library
// itself, into a folder the children read through FUZZ_SEEDS.
//
//   chexbert-f32.gguf, chexbert-f16.gguf   the tiny CheXbert checkpoint (test/fixtures/chexbert)
//   radgraph-f32.gguf                       the tiny RadGraph archive (test/fixtures/radgraph/model)
//   clip/                                   the tiny release converted with its text tower: clip + vision GGUFs
//   search.lrindex, mixed.lrindex           retrieval indexes (test/fixtures/retrieval/search.json's vectors)
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { root } from './bundle.mjs';

const fx = (...p) => path.join(root, 'test', 'fixtures', ...p);

export const SEED_FILES = {
  chexbert: ['chexbert-f32.gguf', 'chexbert-f16.gguf'],
  radgraph: ['radgraph-f32.gguf'],
  index: ['search.lrindex', 'mixed.lrindex'],
};

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
  clipSeed(dir);
  log(`[fuzz] seeds made in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return dir;
}
