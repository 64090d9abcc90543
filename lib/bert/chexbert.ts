// CheXbert's labeler on our engine: a report -> WordPiece ids (as the official evaluation makes them) ->
// the BERT encoder and 14 heads (native lr_bert_*) -> one class per observation, plus the [CLS] hidden state
// (SembScore's embedding).

import { LlavaRadError, fromNative } from '../errors.js';
import { native, type NativeModelParams } from '../native.js';
import { chexbertInputIds } from './chexbert-input.js';
import { chexbertConditions, type ChexbertCondition } from './chexbert-labels.js';
import { BertTokenizer, type WordPieceVocab } from './wordpiece.js';

/** what the addon's loadBert / Bert expose (native/addon/bert.cpp) */
interface NativeBert {
  info(): { nVocab: number; nCtx: number; nEmbd: number; nClassifierHeads: number; nLogits: number };
  encode(ids: Int32Array): Promise<{ cls: Float32Array; logits: Float32Array }>;
  dispose(): Promise<void>;
}
interface NativeBertAddon {
  loadBert(path: string, params?: NativeModelParams): Promise<NativeBert>;
}

export interface ChexbertResult {
  /** the ids the model read: [CLS] ... [SEP], at most 512 */
  ids: number[];
  /** the last layer's hidden state at [CLS] */
  cls: Float32Array;
  /** each head's logits, in condition order */
  logits: number[][];
  /** each head's argmax: 0 blank, 1 positive, 2 negative, 3 uncertain (No Finding: 0 blank, 1 positive) */
  labels: number[];
}

export class ChexbertLabeler {
  readonly tokenizer: BertTokenizer;
  readonly conditions: readonly ChexbertCondition[] = chexbertConditions();
  readonly #native: NativeBert;
  readonly #headClasses: number[];

  private constructor(nativeBert: NativeBert, tokenizer: BertTokenizer, headClasses: number[]) {
    this.#native = nativeBert;
    this.tokenizer = tokenizer;
    this.#headClasses = headClasses;
  }

  /** loads a GGUF from lib/convert/chexbert.ts; `vocab` is bert-base-uncased's (the GGUF's own vocabulary) */
  static async load(ggufPath: string, vocab: WordPieceVocab, params: NativeModelParams = {}): Promise<ChexbertLabeler> {
    let nb: NativeBert;
    try {
      nb = await (native() as unknown as NativeBertAddon).loadBert(ggufPath, params);
    } catch (e) {
      throw fromNative(e);
    }
    const info = nb.info();
    const conditions = chexbertConditions();
    const headClasses = conditions.map((_, i) => (i === conditions.length - 1 ? 2 : 4));
    if (info.nClassifierHeads !== conditions.length || info.nLogits !== headClasses.reduce((a, b) => a + b, 0)) {
      await nb.dispose();
      throw new LlavaRadError('BAD_GGUF', `${ggufPath}: not a CheXbert GGUF (${info.nClassifierHeads} heads, ${info.nLogits} logits)`);
    }
    if (info.nVocab !== vocab.size) {
      await nb.dispose();
      throw new LlavaRadError('BAD_GGUF', `${ggufPath}: ${info.nVocab} token embeddings, the vocabulary has ${vocab.size} pieces`);
    }
    return new ChexbertLabeler(nb, new BertTokenizer(vocab), headClasses);
  }

  async label(report: string): Promise<ChexbertResult> {
    const ids = chexbertInputIds(this.tokenizer, report);
    let out: { cls: Float32Array; logits: Float32Array };
    try {
      out = await this.#native.encode(Int32Array.from(ids));
    } catch (e) {
      throw fromNative(e);
    }
    const logits: number[][] = [];
    let at = 0;
    for (const classes of this.#headClasses) {
      logits.push(Array.from(out.logits.subarray(at, at + classes)));
      at += classes;
    }
    const labels = logits.map((row) => row.indexOf(Math.max(...row)));
    return { ids, cls: out.cls, logits, labels };
  }

  async dispose(): Promise<void> {
    await this.#native.dispose().catch((e: unknown) => { throw fromNative(e); });
  }
}
