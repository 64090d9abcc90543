// open_clip 2.23's text cleaning before its Hugging Face tokenizer: whitespace_clean(basic_clean(text)), where
// basic_clean = ftfy.fix_text, then html.unescape twice, stripped; whitespace_clean = runs of whitespace to one
// space, stripped.
//
// ftfy.fix_text (6.x, default settings) is reproduced for what radiology text meets, in ftfy's order and
// repeated until nothing changes, as ftfy does: HTML entities (only when the text has no '<'), C1 controls read
// as Windows-1252, Latin ligatures, full-width / half-width forms, curly quotes, line breaks, terminal escapes,
// control characters, NFC. What differs from ftfy and Python (checked against them in test/clip-text.test.ts on
// the cases listed in scripts/make-clip-fixtures.py):
//   - mojibake repair (ftfy's fix_encoding: UTF-8 read as Latin-1 / Windows-1252, "Ã©" -> "é") is not done;
//   - lone surrogates are left (ftfy pairs or replaces them);
//   - named HTML entities: the common ones below (Python knows all 2,231 of HTML5); numeric ones all.

import { pyStrip } from '../eval/text.js';

/** named HTML entities we unescape (Python's html.unescape knows every HTML5 name) */
const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', ndash: '\u2013', mdash: '\u2014',
  lsquo: '\u2018', rsquo: '\u2019', ldquo: '\u201c', rdquo: '\u201d', hellip: '\u2026', deg: '\u00b0',
  plusmn: '\u00b1', times: '\u00d7', divide: '\u00f7', micro: '\u00b5', middot: '\u00b7', bull: '\u2022',
  trade: '\u2122', copy: '\u00a9', reg: '\u00ae', sup2: '\u00b2', sup3: '\u00b3', frac12: '\u00bd',
  frac14: '\u00bc', frac34: '\u00be', le: '\u2264', ge: '\u2265', larr: '\u2190', rarr: '\u2192',
  eacute: '\u00e9', egrave: '\u00e8', aacute: '\u00e1', agrave: '\u00e0', ouml: '\u00f6', uuml: '\u00fc',
  auml: '\u00e4', szlig: '\u00df', ntilde: '\u00f1', ccedil: '\u00e7',
  Eacute: '\u00c9', Egrave: '\u00c8', Aacute: '\u00c1', Agrave: '\u00c0', Ouml: '\u00d6', Uuml: '\u00dc',
  Auml: '\u00c4', Ntilde: '\u00d1', Ccedil: '\u00c7',
};
/** entities html.unescape also takes without the ';' (a subset of HTML5's legacy names) */
const LEGACY_NO_SEMICOLON = new Set(['amp', 'lt', 'gt', 'quot', 'nbsp', 'copy', 'reg', 'deg', 'micro', 'middot',
  'plusmn', 'times', 'divide', 'sup2', 'sup3', 'frac12', 'frac14', 'frac34', 'eacute', 'egrave', 'aacute',
  'agrave', 'ouml', 'uuml', 'auml', 'szlig', 'ntilde', 'ccedil', 'Eacute', 'Egrave', 'Aacute', 'Agrave', 'Ouml', 'Uuml',
  'Auml', 'Ntilde', 'Ccedil']);

/** Windows-1252's characters for the bytes 0x80-0x9F (ftfy's "sloppy" codec keeps the 5 unassigned ones) */
const CP1252_C1 = '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

const LIGATURES: Readonly<Record<string, string>> = {
  '\u0132': 'IJ', '\u0133': 'ij', '\u0149': '\u02bcn', '\u01f1': 'DZ', '\u01f2': 'Dz', '\u01f3': 'dz',
  '\u01c4': 'D\u017d', '\u01c5': 'D\u017e', '\u01c6': 'd\u017e', '\u01c7': 'LJ', '\u01c8': 'Lj', '\u01c9': 'lj',
  '\u01ca': 'NJ', '\u01cb': 'Nj', '\u01cc': 'nj', '\ufb00': 'ff', '\ufb01': 'fi', '\ufb02': 'fl', '\ufb03': 'ffi',
  '\ufb04': 'ffl', '\ufb05': '\u017ft', '\ufb06': 'st',
};

/** ftfy's CONTROL_CHARS: removed */
const CONTROL_RE = /[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
/** Python's str whitespace (what re's \s matches in a str pattern) */
const PY_WHITESPACE = /[\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/g;
const PY_WHITESPACE_EDGES = /^[\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
/** ftfy stops after this many passes (it loops until the text is stable; real text needs 1 or 2) */
const MAX_PASSES = 16;

function codePointFromReference(n: number): string {
  if (n >= 0x80 && n <= 0x9f) return CP1252_C1[n - 0x80]!;
  if (n === 0 || n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return '\ufffd';
  return String.fromCodePoint(n);
}

/** html.unescape-like: numeric references always; named ones from NAMED_ENTITIES (strict: ';' required, as ftfy) */
function unescapeHtml(text: string, strict: boolean): string {
  const re = strict ? /&(#[xX][0-9a-fA-F]{1,8}|#[0-9]{1,10}|[0-9A-Za-z]{1,24});/g : /&(#[xX][0-9a-fA-F]+|#[0-9]+|[0-9A-Za-z]+);?/g;
  return text.replace(re, (whole, body: string) => {
    if (body.startsWith('#')) {
      const hex = body[1] === 'x' || body[1] === 'X';
      return codePointFromReference(parseInt(body.slice(hex ? 2 : 1), hex ? 16 : 10));
    }
    const semicolon = whole.endsWith(';');
    const named = NAMED_ENTITIES[body];
    if (named !== undefined && (semicolon || LEGACY_NO_SEMICOLON.has(body))) return named;
    // ftfy: an all-capitals name is its lower-case entity in capitals ("&EACUTE;" -> "É")
    const lower = strict && body.length > 1 && body === body.toUpperCase() ? NAMED_ENTITIES[body.toLowerCase()] : undefined;
    if (lower !== undefined) return lower.toUpperCase();
    if (strict) return whole;
    // html.unescape: the longest legacy name the reference starts with, the rest kept ("&copy2;" -> "©2;")
    for (let n = body.length - 1; n > 1; n--) {
      const head = body.slice(0, n);
      if (LEGACY_NO_SEMICOLON.has(head)) return NAMED_ENTITIES[head]! + whole.slice(1 + n);
    }
    return whole;
  });
}

function fixCharacterWidth(text: string): string {
  return text.replace(/[\u3000\uff01-\uffef]/g, (ch) => (ch === '\u3000' ? ' ' : ch.normalize('NFKC')));
}

/** one pass of ftfy.fix_text's fixers (the ones reproduced), in ftfy's order */
function ftfyPass(text: string, unescape: boolean): string {
  let t = unescape ? unescapeHtml(text, true) : text;
  t = t.replace(/[\u0080-\u009f]/g, (ch) => CP1252_C1[ch.charCodeAt(0) - 0x80]!);
  t = t.replace(/[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g, (ch) => LIGATURES[ch] ?? ch);
  t = fixCharacterWidth(t);
  t = t.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'");
  t = t.replace(/\r\n/g, '\n').replace(/[\r\u2028\u2029\u0085]/g, '\n');
  t = t.replace(/\u001b\[((?:\d|;)*)([a-zA-Z])/g, '');
  t = t.replace(CONTROL_RE, '');
  return t.normalize('NFC');
}

/** ftfy.fix_text with the fixers above, to a fixed point */
export function fixText(text: string): string {
  const unescape = !text.includes('<');
  let t = text;
  for (let i = 0; i < MAX_PASSES; i++) {
    const next = ftfyPass(t, unescape);
    if (next === t) break;
    t = next;
  }
  return t;
}

/** open_clip's whitespace_clean(basic_clean(text)) */
export function cleanClipText(text: string): string {
  let t = fixText(text);
  // strip() by a scan: the edges' regular expression is quadratic in a run of whitespace inside the text
  // (64,000 spaces: 5.5 s); after the runs became single spaces it is linear
  t = pyStrip(unescapeHtml(unescapeHtml(t, false), false));
  return t.replace(PY_WHITESPACE, ' ').replace(PY_WHITESPACE_EDGES, '');
}
