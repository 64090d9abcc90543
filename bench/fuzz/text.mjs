// Hostile text for the `text` target: report-like strings built from pieces that text handling gets wrong —
// case mappings that change a string's length (İ, ß, ﬁ), stacked combining marks, lone surrogates, control
// and format characters, every Unicode whitespace, scripts without spaces, the models' special-token
// strings, long runs without a break, long runs of one-character words — at lengths from empty to past the
// library's limits (65,536 bytes of a reference or prediction, 4,096 RadGraph words, 4,096 bytes of a reason).

const FINDINGS = [
  'No acute cardiopulmonary process.', 'Small left pleural effusion with adjacent atelectasis.',
  'The heart size is normal. The lungs are clear.', 'Mild cardiomegaly. No pneumothorax.',
  'Right PICC terminates in the lower SVC.', 'There is no focal consolidation, pleural effusion or pneumothorax.',
];

const PIECES = {
  findings: () => FINDINGS,
  caseLength: () => ['İ', 'İstanbul', 'ß', 'ẞ', 'ﬁ', 'ﬃ', 'ŉ', 'ǰ', 'ΐ', 'և', 'ﬓ', 'Σ', 'ς', 'ǅ', 'K', 'Å', 'I\u0307'],
  combining: () => ['e\u0301', 'a\u0300\u0301\u0302\u0303', '\u0301', 'n\u0303', '\u20dd', 'x\u0336', 'Z\u0351\u0352\u0353'],
  surrogates: () => ['\ud800', '\udc00', '\udfff\ud800', '🙂', '👩‍👩‍👧', '🇺🇸', '\u{10ffff}', '\u{1d400}'],
  controls: () => ['\u0000', '\u0001', '\u0008', '\u001b[31m', '\u007f', '\u0085', '\u009f', '\u00ad', '\u200b', '\u200d', '\u200e', '\u202e', '\u2060', '\ufeff', '\ufffe', '\uffff', '\ufffd'],
  spaces: () => [' ', '\t', '\n', '\r', '\r\n', '\v', '\f', '\u00a0', '\u1680', '\u2000', '\u2007', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\u180e'],
  scripts: () => ['中文字符', 'ภาษาไทย', 'العربية', 'עברית', 'हिन्दी', '한국어', 'にほんご', 'Ελληνικά', 'кириллица', '１２３ＡＢＣ', '𝐀𝐁𝐂', 'Ⅻ', '㎒', '℃'],
  specials: () => ['[CLS]', '[SEP]', '[MASK]', '[UNK]', '[PAD]', '<s>', '</s>', '<unk>', '<image>', '<|endoftext|>', '<|startoftext|>', 'USER:', 'ASSISTANT:', '###', '\\n', '{}', '%s', '${x}'],
  punctuation: () => ['.', ',', ';', ':', '!', '?', '...', '--', '—', '“', '”', '«»', '(', ')', '[', ']', '/.', '/', '\\', '&amp;', '&#0;', "'", '"', '`'],
  numbers: () => ['1', '1.2.3.4', '0.5 cm', '1e308', '-0', 'NaN', 'Infinity', '٣', '½', '²', '10⁻³'],
};

/** one piece of hostile text */
function piece(rng) {
  const kind = rng.weighted({ findings: 4, caseLength: 2, combining: 1, surrogates: 1, controls: 2, spaces: 2, scripts: 1, specials: 2, punctuation: 2, numbers: 1 });
  return rng.pick(PIECES[kind]());
}

/** a run of one thing: a long word, many one-character words, stacked marks, a repeated piece */
function run(rng, bytes) {
  const what = rng.weighted({ word: 2, shortWords: 3, marks: 1, repeat: 2, spaces: 1 });
  rng.note(`run ${what} ~${bytes} B`);
  if (what === 'word') return 'x'.repeat(bytes);
  if (what === 'shortWords') return rng.pick(['a ', '1.', '. ', 'İ ', '中']).repeat(Math.ceil(bytes / 2));
  if (what === 'marks') return 'e' + '\u0301'.repeat(Math.ceil(bytes / 2));
  if (what === 'spaces') return rng.pick(PIECES.spaces()).repeat(bytes);
  const p = piece(rng);
  return p.repeat(Math.max(1, Math.ceil(bytes / Math.max(1, Buffer.byteLength(p)))));
}

/** a hostile text: mostly short and mixed, sometimes one long run (up to a bit past 65,536 bytes) */
export function hostileText(rng) {
  const shape = rng.weighted({ empty: 1, mixed: 10, run: 3, both: 2 });
  if (shape === 'empty') return rng.pick(['', ' ', '\n', '\u0000']);
  let text = '';
  if (shape !== 'run') {
    const n = rng.count(40, 8);
    for (let i = 0; i < n; i++) text += piece(rng) + (rng.chance(0.6) ? ' ' : '');
  }
  if (shape !== 'mixed') {
    const bytes = rng.pick([100, 1000, 4096, 4097, 9000, 20_000, 65_536, 66_000]);
    const at = rng.int(text.length + 1);
    text = text.slice(0, at) + run(rng, bytes) + text.slice(at);
  }
  return text;
}
