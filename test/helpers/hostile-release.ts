// Builders for hostile releases (test/hostile-release.test.ts): a writable copy of the tiny official-format
// release (test/fixtures/release), JSON edits, hand-made PyTorch zip checkpoints whose tensors may be
// broadcast views (stride 0, what `tensor.expand()` saves), and raw safetensors files.

import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zip } from './hostile-pickle.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const RELEASE = path.join(here, '..', 'fixtures', 'release');

export interface ReleaseCopy {
  root: string;
  base: string;
  adapter: string;
  /** an output folder whose parent does not exist yet */
  out: string;
}

/** a writable copy of the tiny release under `dir` (created) */
export function copyRelease(dir: string): ReleaseCopy {
  cpSync(RELEASE, dir, { recursive: true });
  return { root: dir, base: path.join(dir, 'vicuna'), adapter: path.join(dir, 'llava-rad'), out: path.join(dir, 'made', 'out') };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

/** rewrites a JSON file through `edit` */
export function editJson(file: string, edit: (j: Json) => void): void {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Json;
  edit(j);
  writeFileSync(file, JSON.stringify(j));
}

// ------------------------------------------------------------------------------------------------
// PyTorch zip checkpoints (torch.save's layout: archive/data.pkl, archive/byteorder, archive/data/<key>)

export interface TorchTensorSpec {
  /** PyTorch order */
  shape: number[];
  /** one stored element seen at every position (stride 0 in every dimension) */
  broadcast?: boolean;
}

const op = (...b: Array<number | string | Buffer>) =>
  Buffer.concat(b.map((x) => (typeof x === 'number' ? Buffer.from([x]) : typeof x === 'string' ? Buffer.from(x, 'latin1') : x)));
const pStr = (s: string) => {
  const b = Buffer.from(s, 'utf8');
  const n = Buffer.alloc(4);
  n.writeUInt32LE(b.length);
  return op('X', n, b);
};
const pInt = (v: number) => {
  const n = Buffer.alloc(4);
  n.writeInt32LE(v);
  return op('J', n);
};
const pGlobal = (m: string, n: string) => op(`c${m}\n${n}\n`);
const pTuple = (...items: Buffer[]) => op('(', ...items, 't');
const pOrderedDict = () => op(pGlobal('collections', 'OrderedDict'), ')R');

/** fp16 bits of 0.01, the value every element holds */
const FILL = 0x211f;

/** a torch.save zip of fp16 tensors (a flat state dict) */
export function torchZip(tensors: Record<string, TorchTensorSpec>): Buffer {
  const items: Buffer[] = [];
  const entries: Array<[string, Buffer]> = [];
  Object.entries(tensors).forEach(([name, spec], i) => {
    const numel = spec.shape.reduce((a, d) => a * d, 1);
    const stored = spec.broadcast ? 1 : numel;
    const stride = spec.shape.map((_, d) => (spec.broadcast ? 0 : spec.shape.slice(d + 1).reduce((a, x) => a * x, 1)));
    const pid = pTuple(pStr('storage'), pGlobal('torch', 'HalfStorage'), pStr(String(i)), pStr('cpu'), pInt(stored));
    items.push(pStr(name), op(
      pGlobal('torch._utils', '_rebuild_tensor_v2'),
      pTuple(op(pid, 'Q'), pInt(0), pTuple(...spec.shape.map(pInt)), pTuple(...stride.map(pInt)), op(0x89), pOrderedDict()),
      'R',
    ));
    const data = Buffer.alloc(stored * 2);
    for (let k = 0; k < stored; k++) data.writeUInt16LE(FILL, 2 * k);
    entries.push([`archive/data/${i}`, data]);
  });
  const pkl = op(0x80, 2, pOrderedDict(), '(', ...items, 'u', '.');
  return storedZip([['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from('little')], ...entries]);
}

/** a zip of stored (uncompressed) entries, as torch writes */
function storedZip(entries: Array<[string, Buffer]>): Buffer {
  return zip(entries.map(([name, data]) => ({ name, data })));
}

// ------------------------------------------------------------------------------------------------

/** a safetensors file: 8-byte header length, the header text as given, then `dataBytes` zero bytes */
export function safetensorsBytes(header: string | object, dataBytes = 0): Buffer {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
}

/**
 * A release whose base weights are broadcast views with the config `cfg` (every base tensor one stored
 * element: a few KB of checkpoint claiming hundreds of MB), with one real LoRA pair and a real projector so that
 * every other check passes. Writes into `rel` (a copyRelease).
 */
export function writeBroadcastRelease(rel: ReleaseCopy, cfg: { hidden: number; heads: number; ff: number; layers: number }): void {
  const { hidden, heads, ff, layers } = cfg;
  const vocab = 32000; // the tokenizer's
  const base: Record<string, TorchTensorSpec> = {
    'model.embed_tokens.weight': { shape: [vocab, hidden], broadcast: true },
    'lm_head.weight': { shape: [vocab, hidden], broadcast: true },
    'model.norm.weight': { shape: [hidden], broadcast: true },
  };
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    for (const n of ['input_layernorm', 'post_attention_layernorm']) base[`${p}${n}.weight`] = { shape: [hidden], broadcast: true };
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) base[`${p}self_attn.${n}.weight`] = { shape: [hidden, hidden], broadcast: true };
    for (const n of ['gate_proj', 'up_proj']) base[`${p}mlp.${n}.weight`] = { shape: [ff, hidden], broadcast: true };
    base[`${p}mlp.down_proj.weight`] = { shape: [hidden, ff], broadcast: true };
  }
  for (const f of ['pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']) {
    rmSync(path.join(rel.base, f));
  }
  writeFileSync(path.join(rel.base, 'pytorch_model.bin'), torchZip(base));
  const numbers = { hidden_size: hidden, num_attention_heads: heads, num_key_value_heads: heads, intermediate_size: ff, num_hidden_layers: layers };
  editJson(path.join(rel.base, 'config.json'), (j) => Object.assign(j, numbers));
  editJson(path.join(rel.adapter, 'config.json'), (j) => {
    Object.assign(j, numbers);
    delete j.num_key_value_heads;
  });
  const r = 4;
  writeFileSync(path.join(rel.adapter, 'adapter_model.bin'), torchZip({
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [r, hidden] },
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { shape: [hidden, r] },
  }));
  const tower = 32; // the tiny tower's width
  writeFileSync(path.join(rel.adapter, 'non_lora_trainables.bin'), torchZip({
    'base_model.model.model.mm_projector.0.weight': { shape: [hidden, tower] },
    'base_model.model.model.mm_projector.0.bias': { shape: [hidden] },
    'base_model.model.model.mm_projector.2.weight': { shape: [hidden, hidden] },
    'base_model.model.model.mm_projector.2.bias': { shape: [hidden] },
  }));
}
