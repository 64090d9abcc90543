// Tokenizer parity corpus: texts whose ids must be identical between our engine, llama.cpp
// (node-llama-cpp, special tokens off) and llama-tokenizer-js, and whose detokenization must give the
// text back. Hand-written sections plus generated ones (deterministic PRNG, so the corpus never
// changes between runs).

export interface CorpusSection {
  name: string;
  texts: string[];
}

// ------------------------------------------------------------------------------------------------
// radiology: findings and impressions as they appear in chest X-ray reports (MIMIC-CXR style)

const radiologyFindings: string[] = [
  'The lungs are clear without focal consolidation, pleural effusion, or pneumothorax.',
  'Heart size is normal. The mediastinal and hilar contours are unremarkable.',
  'There is no evidence of pneumothorax or pleural effusion.',
  'PA and lateral views of the chest provided.',
  'AP portable upright view of the chest.',
  'Single frontal view of the chest was obtained.',
  'Moderate cardiomegaly is stable compared to the prior study from ___.',
  'Mild pulmonary vascular congestion without frank interstitial edema.',
  'Small bilateral pleural effusions with adjacent bibasilar atelectasis.',
  'Right lower lobe opacity concerning for pneumonia in the appropriate clinical setting.',
  'Left basilar opacity likely reflects atelectasis, though infection cannot be excluded.',
  'Endotracheal tube terminates 4.5 cm above the carina.',
  'The ET tube tip is approximately 3.2 cm above the level of the carina.',
  'Enteric tube courses below the diaphragm with the tip out of view.',
  'Nasogastric tube tip is in the stomach; the side port is at the GE junction.',
  'Right internal jugular central venous catheter tip projects over the mid SVC.',
  'Left PICC line terminates in the low SVC/cavoatrial junction.',
  'A right-sided Port-A-Cath is in place with tip in the right atrium.',
  'Dual-lead pacemaker/ICD with leads in the right atrium and right ventricle.',
  'Median sternotomy wires and mediastinal clips are intact.',
  'Status post CABG. Prosthetic aortic valve (TAVR) is noted.',
  'There is a 1.2 x 0.9 cm nodular opacity in the right upper lobe.',
  'A 6-mm calcified granuloma in the left mid lung zone is unchanged.',
  'Hyperinflated lungs with flattening of the hemidiaphragms, consistent with COPD.',
  'Biapical pleural thickening/scarring is again seen.',
  'Calcified pleural plaques suggest prior asbestos exposure.',
  'No acute osseous abnormality. Multilevel degenerative changes of the thoracic spine.',
  'Old healed fractures of the left 5th-7th posterior ribs.',
  'Compression deformity of a lower thoracic vertebral body (T11?) is unchanged.',
  'Air-space opacities in the right perihilar region, possibly aspiration.',
  'Diffuse bilateral interstitial and alveolar opacities, c/w pulmonary edema vs. ARDS.',
  'Kerley B lines at the lung bases; cephalization of pulmonary vasculature.',
  'Moderate right pneumothorax (approx. 25%) with no mediastinal shift.',
  'Tiny left apical pneumothorax, decreased from ___ at 06:45.',
  'Chest tube in the right hemithorax; no residual pneumothorax.',
  'Subcutaneous emphysema along the right chest wall.',
  'Free intraperitoneal air beneath the right hemidiaphragm!!',
  'The cardiac silhouette is enlarged (CTR ~0.6).',
  'Tortuous, calcified thoracic aorta. Aortic knob calcifications.',
  'Widened mediastinum measuring 8.5 cm; recommend CTA chest to exclude dissection.',
  'Hilar lymphadenopathy, R > L.',
  'Elevation of the right hemidiaphragm, unchanged since 2019-03-14.',
  'Lungs: clear. Heart: normal size. Bones: intact. Soft tissues: unremarkable.',
  'FINDINGS: Frontal and lateral views of the chest. IMPRESSION: No acute cardiopulmonary process.',
  'IMPRESSION:\n1. No acute cardiopulmonary process.\n2. Stable cardiomegaly.',
  'IMPRESSION: 1) Interval improvement in the right basilar consolidation; 2) unchanged small left effusion.',
  'Comparison: Chest radiograph dated 12/03/2021 at 14:32.',
  'INDICATION: 67-year-old man with fever, cough, and SOB. Evaluate for pneumonia.',
  'INDICATION: ___F with hx of CHF, presenting with dyspnea; r/o edema.',
  'TECHNIQUE: Portable AP chest radiograph, 1 view.',
  'WET READ: no PTX post line placement. Communicated to Dr. ___ by phone at 10:15 a.m.',
  'Findings were discussed with the referring physician, Dr. Smith, on 3/4/2022 at 2:05 p.m.',
  'Heart size upper limits of normal. O2 sat 92% on 2L NC.',
  'Lung volumes are low, which accentuates the bronchovascular markings.',
  'Patient is rotated to the left, limiting assessment of the mediastinum.',
  'Exam is limited by patient motion and underpenetration.',
  'Retrocardiac opacity may represent atelectasis or consolidation.',
  'Possible small left pleural effusion vs. pleural thickening.',
  'Blunting of the left costophrenic angle.',
  'Right middle lobe collapse with volume loss and shift of the minor fissure.',
  'Cavitary lesion in the left upper lobe measuring 3.4 cm, suspicious for TB or malignancy.',
  'Multiple bilateral pulmonary nodules up to 2 cm, likely metastases.',
  'Reticulonodular interstitial pattern with honeycombing at the bases (UIP pattern?).',
  'ETT 5 cm above carina, NGT in stomach, R IJ CVC tip at cavoatrial junction.',
  'IABP tip 2 cm below the top of the aortic arch.',
  'Swan-Ganz catheter tip in the right interlobar pulmonary artery; recommend retraction by 2-3 cm.',
  'Dobhoff tube tip in the distal esophagus—recommend advancement.',
  'Impella device in expected position. LVAD is partially imaged.',
  'Surgical clips in the right upper quadrant (s/p cholecystectomy).',
  'Mild-to-moderate pulmonary edema, improved from prior.',
  "The patient's known left lower lobe mass is again seen.",
  'No pneumoperitoneum. No pneumomediastinum. No pneumopericardium.',
  'Pectus excavatum deformity; scoliosis convex to the right.',
  'Heart size: 14.2 cm; thoracic width: 28.0 cm; ratio 0.51.',
  'Bilateral breast implants are noted.',
  'There is an age-indeterminate fracture of the right clavicle.',
  'ICD generator overlies the left chest wall; leads are intact & unchanged.',
  'pH 7.32, pCO2 48 mmHg, pO2 65 mmHg; FiO2 40%, PEEP 8 cmH2O.',
  'Temperature 38.9 °C (102.0 °F); HR 112 bpm; BP 95/60 mm Hg.',
  'Dose: 0.12 mGy; kVp 110; mAs 2.5; SID 180 cm.',
  'The right lung base is not included on this image (limited study).',
  'Findings are suggestive of, but not diagnostic for, early pneumonia.',
  'Clinical correlation is recommended. Follow-up CXR in 6-8 weeks after treatment.',
  'Recommend CT chest with IV contrast for further evaluation.',
  'No change.',
  'Unchanged.',
  'Normal chest.',
  'Stable.',
  'No acute cardiopulmonary process.',
  'Provide a description of the findings in the radiology image.',
  'Provide a description of the findings in the radiology image given the following indication: History: ___M with chest pain',
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: ",
  '\nProvide a description of the findings in the radiology image. ASSISTANT:',
  'ASSISTANT: The lungs are clear. There is no pleural effusion or pneumothorax.</s>',
  'Lungs are hyperexpanded.  There is no focal consolidation.  Heart size normal.',
  'FINDINGS:\r\nThe lungs are clear.\r\nIMPRESSION:\r\nNormal.',
  '\tFINDINGS:\tLungs clear.\n\tIMPRESSION:\tNegative.',
  'Mäßige Kardiomegalie. Kein Pleuraerguss. Lungenödem rückläufig.',
  "Épanchement pleural droit de faible abondance ; pas de pneumothorax. Opacité alvéolaire à l'apex gauche.",
  'Derrame pleural bilateral. Consolidación en el lóbulo inferior derecho. Índice cardiotorácico: 0,55.',
  'Sem alterações pleuropulmonares agudas. Área cardíaca normal. Coração e aorta sem alterações.',
  'Кардиомегалия. Плевральный выпот справа. Пневмоторакса нет.',
  '心影增大，双肺纹理增多，右下肺见斑片状阴影，考虑肺炎。',
  '両肺野に明らかな異常陰影なし。心胸郭比は52％。胸水なし。',
  '양측 폐야에 특이 소견 없음. 심비대 없음.',
  'ذات الرئة في الفص السفلي الأيمن. لا يوجد انصباب جنبي.',
  'אין תסנין ריאתי. גודל הלב תקין.',
  'फेफड़े साफ हैं। हृदय का आकार सामान्य है।',
  'Ο καρδιακός όγκος είναι φυσιολογικός. Δεν υπάρχει πλευριτική συλλογή.',
];

// ------------------------------------------------------------------------------------------------
// numbers, units, abbreviations, punctuation

const numbersAndSymbols: string[] = [
  '0', '1', '12', '123', '1234', '12345', '1234567890', '3.14159', '-0.5', '+42', '1e-5', '6.02e23',
  '1,000,000', '1.000.000,00', '50%', '0.5%', '~3 cm', '<5 mm', '>10 mm', '≤ 2.5', '≥ 3', '±0.2', '3×4', '10^6',
  '2020-01-01', '01/02/2003', '12:34:56', '23:59', 'T1-T12', 'C7/T1', 'L4-5', 'V1–V6', 'I-131', 'Tc-99m',
  '5 mm', '5mm', '5-mm', '5 cm²', '5 cm³', '37.5°C', '98.6 °F', '120/80 mmHg', '10 µg', '10 μg', '5 mL', '2 L/min',
  'mg/dL', 'mEq/L', 'ng/mL', 'IU/L', 'kg/m2', '1/2', '½', '¼', '¾', '⅓', 'Ⅻ', '①②③', '²³¹', '₀₁₂',
  'e.g.', 'i.e.', 'etc.', 'vs.', 'approx.', 'Dr.', 'Mr.', 'No.', 'U.S.A.', 'w/o', 'c/w', 's/p', 'r/o', 'h/o', 'n/v/d',
  'COPD', 'CHF', 'ARDS', 'PICC', 'CVC', 'ETT', 'NGT', 'OGT', 'IABP', 'LVAD', 'CABG', 'TAVR', 'PTX', 'CXR', 'CT', 'MRI', 'PET/CT',
  '!', '?', '.', ',', ';', ':', '...', '…', '?!', '!!!', '???', '---', '--', '—', '–', '‐', '•', '·', '§', '¶', '†', '‡',
  '"quoted"', "'single'", '“curly”', '‘curly’', '«guillemets»', '‹single›', '„low“', '(paren)', '[bracket]', '{brace}',
  '<angle>', 'a<b>c', 'x < y > z', '#hashtag', '@mention', 'email@example.com', 'https://example.org/path?q=1&r=2#frag',
  'C:\\Windows\\System32', '/usr/local/bin', '~/.bashrc', '$100', '€50', '£20', '¥1000', '₹500', '₩1000', '¢', '₿',
  '`code`', '```\nblock\n```', '<div class="x">y</div>', '{"key": [1, 2, 3]}', 'a=b&&c||d', 'x += 1;', 'f(x) = x^2 + 2x + 1',
  '**bold** _italic_ ~~strike~~', '| a | b |\n|---|---|', '> quote', '- item\n- item', '1. first\n2. second',
  '™', '®', '©', '℃', '℉', 'Å', 'Ω', 'µ', 'ß', 'ﬁ', 'ﬂ', 'Ǆ', 'ǅ', 'ǆ', 'İ', 'ı', 'ſ',
];

// ------------------------------------------------------------------------------------------------
// unicode classes

const unicodeTexts: string[] = [
  // Latin with accents, precomposed and decomposed (combining marks)
  'café', 'cafe\u0301', 'naïve', 'nai\u0308ve', 'résumé', 'Ångström', 'A\u030Angstro\u0308m', 'Zoë', 'São Paulo', 'Kraków',
  'Łódź', 'Dvořák', 'Ærøskøbing', 'Þórður', 'Straße', 'ĳ', 'œuvre', 'Čeština', 'Türkçe', 'İstanbul',
  'a\u0300\u0301\u0302\u0303\u0304', 'Z\u0351\u036B\u0343\u036A\u0302\u036B\u033D\u034F\u0334\u0319\u0324\u031E\u0349\u035A\u032F\u031E\u0320\u034D', 'e\u0338', 'q\u0323\u0307',
  // Greek, Cyrillic, Armenian, Georgian
  'αβγδεζηθικλμνξοπρστυφχψω', 'ΑΒΓΔ', 'ἀλήθεια', 'Съешь же ещё этих мягких французских булок', 'Ўзбек', 'Україна', 'Հայաստան', 'ქართული',
  // CJK
  '中文', '日本語のテキスト', 'ひらがな', 'カタカナ', 'ｶﾀｶﾅ', '한국어', '한글 자모 ㄱㄴㄷ', '漢字', '𠀀𠀁𠀂', '𪚥', '〇一二三', '、。「」『』', '　全角スペース　',
  'Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３',
  // right-to-left
  'مرحبا بالعالم', 'العربية', 'بِسْمِ ٱللَّٰهِ', '١٢٣٤٥٦٧٨٩٠', 'שלום עולם', 'עִבְרִית', 'فارسی', 'اردو',
  'mixed English עברית and العربية text', '\u202Eright-to-left override\u202C', '\u200Fmark\u200E',
  // Indic and South-East Asian
  'नमस्ते', 'हिन्दी', 'क्षत्रिय', 'বাংলা', 'தமிழ்', 'తెలుగు', 'ಕನ್ನಡ', 'മലയാളം', 'ગુજરાતી', 'ਪੰਜਾਬੀ', 'ไทย', 'ภาษาไทย', 'ລາວ', 'ខ្មែរ', 'မြန်မာ', 'සිංහල', 'བོད་ཡིག',
  // others
  'Ethiopic: ሰላም', 'Cherokee: ᏣᎳᎩ', 'Inuktitut: ᐃᓄᒃᑎᑐᑦ', 'Mongolian: ᠮᠣᠩᠭᠣᠯ', 'Runic: ᚠᚢᚦᚨᚱᚲ', 'Ogham: ᚛ᚑᚌᚐᚋ᚜', 'Gothic: 𐌲𐌿𐍄𐌹𐍃𐌺', 'Linear B: 𐀀𐀁', 'Cuneiform: 𒀀𒀁',
  'Egyptian: 𓀀𓀁𓂀', 'Braille: ⠓⠑⠇⠇⠕', 'Tifinagh: ⵜⵉⴼⵉⵏⴰⵖ', 'Vai: ꕙꔤ', 'Yi: ꆈꌠꁱꂷ',
  // zero-width and invisible
  'zero\u200Bwidth\u200Bspace', 'joiner\u200Dtest', 'non\u200Cjoiner', 'word\u2060joiner', '\uFEFFBOM at start', 'soft\u00ADhyphen',
  'variation\uFE0Fselector', 'x\uFE0E', '\u2062invisible\u2063separators\u2064', 'tag\u{E0041}\u{E0042}chars',
  // emoji: plain, skin tones, ZWJ sequences, flags, keycaps
  '😀', '😀😃😄😁', '👍', '👍🏽', '👋🏿', '❤️', '❤', '♥', '✨', '🔥', '🩻', '🫁', '🫀', '🩺', '💉', '🏥',
  '👨‍👩‍👧‍👦', '👩‍⚕️', '🧑‍⚕️', '👨🏽‍⚕️', '🏳️‍🌈', '🏳️‍⚧️', '🧑‍🤝‍🧑', '😶‍🌫️', '❤️‍🔥',
  '🇺🇸', '🇩🇪🇫🇷🇯🇵', '🇬🇧', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '1️⃣', '#️⃣', '*️⃣', '🔟',
  'The patient 🤒 had a fever 🌡️ of 39 °C 😷.',
  // math and technical symbols
  '∀x∈ℝ: x² ≥ 0', '∑_{i=1}^{n} i = n(n+1)/2', '∫₀^∞ e^{-x} dx = 1', '√2 ≈ 1.414', '∞', '∂f/∂x', '∇·E = ρ/ε₀', 'A ⊆ B ∪ C', '¬(p ∧ q) ⇔ ¬p ∨ ¬q',
  '𝐀𝐁𝐂 𝑎𝑏𝑐 𝔸𝔹ℂ 𝒜ℬ𝒞', 'ℵ₀', '⌘⌥⇧⌃', '←↑→↓↔', '■□▪▫▲△▼▽◆◇○●', '♠♣♥♦', '♩♪♫♬', '☀☁☂☃', '⚕', '☤',
  'box: ┌─┐│└─┘', 'blocks: ░▒▓█', '\u2581 literal lower one-eighth block', '\u2581\u2581', 'a\u2581b',
  // unicode spaces and line separators
  'nbsp\u00A0here', '\u00A0leading nbsp', 'trailing nbsp\u00A0', 'thin\u2009space', 'hair\u200Aspace', 'em\u2003space', 'en\u2002space',
  'figure\u2007space', 'narrow\u202Fnbsp', 'ideographic\u3000space', 'ogham\u1680space', 'medium\u205Fmath', 'line\u2028separator', 'para\u2029separator',
  'next\u0085line', 'vertical\u000Btab', 'form\u000Cfeed', 'bell\u0007char', 'escape\u001B[0m', 'null\u0000byte', 'delete\u007Fchar', 'c1\u0080\u009Fcontrols',
  // replacement, private use, noncharacters, specials
  '\uFFFD', 'bad \uFFFD char', '\uE000\uF8FF', '\u{F0000}\u{10FFFD}', '\uFFFE\uFFFF', '\u{1FFFE}', '\uFFFC', '\u{10FFFF}',
];

// ------------------------------------------------------------------------------------------------
// whitespace and edge cases

const whitespaceTexts: string[] = [
  '', ' ', '  ', '   ', '    ', '        ', ' '.repeat(16), ' '.repeat(17), ' '.repeat(33), ' '.repeat(100),
  '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r', '\r\n', '\r\n\r\n', '\n\r', ' \n ', '\t \t', ' \t\n\r ',
  'a', ' a', 'a ', ' a ', '  a', 'a  ', '  a  ', 'a b', 'a  b', 'a   b', 'a    b', 'a\tb', 'a\nb', 'a\r\nb', 'a \n b', 'a\n\n\nb',
  'Hello', ' Hello', 'Hello ', ' Hello ', '  Hello  ', 'Hello world', 'Hello  world', 'Hello\tworld', 'Hello\nworld', 'Hello\r\nworld',
  ' The lungs are clear.', 'The lungs are clear. ', '   The lungs are clear.   ', '\nThe lungs are clear.\n', '\tIndented',
  'line1\nline2\nline3', 'line1\r\nline2\r\nline3\r\n', 'trailing newline\n', '\nleading newline', 'mixed \t \n \r\n whitespace',
  'end with tab\t', 'two trailing spaces  ', ' . ', ' , ', ' ! ', 'word .', 'word ,', 'word\u00A0.',
  // literal special-token texts (must tokenize as plain text)
  '<s>', '</s>', '<unk>', '<s> hello', 'hello </s>', '<s></s>', '<s><s>', 'a<s>b', ' <s>', '<s> ', '<unk><unk>',
  '<0x41>', '<0x0A>', '<0x00>', '<0xFF>', '<0xZZ>', '<0x>', '<0x4>', '<0x414>', '<<0x41>>', '<image>', '<image>\nDescribe', 'USER: <image>\nhi ASSISTANT:',
  '▁', '▁▁', '▁hello', 'hello▁world', '[INST]', '<<SYS>>', '<|im_start|>', '<|endoftext|>', '<pad>', '<mask>', '[CLS]', '[SEP]',
  // long words and repetitions
  'a'.repeat(50), 'a'.repeat(257), 'ab'.repeat(100), 'abc'.repeat(80), '.'.repeat(64), '-'.repeat(80), '='.repeat(33), '_'.repeat(40),
  '!'.repeat(20), '0'.repeat(40), '9'.repeat(31), 'xyz '.repeat(30), 'é'.repeat(40), '中'.repeat(30), '😀'.repeat(20), '\u0301'.repeat(10),
  'pneumonoultramicroscopicsilicovolcanoconiosis', 'supercalifragilisticexpialidocious', 'Donaudampfschifffahrtsgesellschaftskapitänswitwe',
  'hippopotomonstrosesquippedaliophobia', 'antidisestablishmentarianism', 'Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch',
  'Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz', 'thequickbrownfoxjumpsoverthelazydog'.repeat(3),
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'ThisIsCamelCaseText', 'snake_case_identifier_name', 'kebab-case-identifier-name', 'SCREAMING_SNAKE_CASE', 'MiXeD cAsE tExT',
  '3.14159265358979323846264338327950288419716939937510', '00000000000000000000001', 'v1.2.3-beta.4+build.567',
  'the the the the the the the the', 'I I I I I', 'a a a a a a a a a a a a', '............', '. . . . .',
];

// ------------------------------------------------------------------------------------------------
// generated sections

/** mulberry32: a tiny deterministic PRNG */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** every ASCII character alone, after a word and between words */
function asciiTexts(): string[] {
  const out: string[] = [];
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    out.push(ch, `x${ch}`, `word${ch}word`, ` ${ch} `);
  }
  return out;
}

/** Latin-1 supplement, Latin Extended-A, General Punctuation: each character alone and in a word */
function blockTexts(): string[] {
  const out: string[] = [];
  const ranges: [number, number][] = [
    [0x00a0, 0x00ff],
    [0x0100, 0x017f],
    [0x2000, 0x206f],
  ];
  for (const [lo, hi] of ranges) {
    for (let c = lo; c <= hi; c++) {
      const ch = String.fromCodePoint(c);
      out.push(ch, `a${ch}b`);
    }
  }
  return out;
}

/** one character from each of many Unicode blocks (every 97th code point of the BMP and some astral) */
function codePointSweep(): string[] {
  const out: string[] = [];
  let s = '';
  for (let c = 0x20; c < 0x30000; c += c < 0x10000 ? 97 : 1009) {
    if (c >= 0xd800 && c <= 0xdfff) continue; // surrogates are not characters
    s += String.fromCodePoint(c);
    if (s.length >= 24) {
      out.push(s);
      s = '';
    }
  }
  if (s) out.push(s);
  return out;
}

const FRAGMENTS = [
  'the', 'lungs', 'are', 'clear', 'heart', 'size', 'normal', 'pleural', 'effusion', 'pneumothorax', 'no', 'acute', 'process',
  'cardiomegaly', 'atelectasis', 'opacity', 'right', 'left', 'lower', 'upper', 'lobe', 'tube', 'catheter', 'tip', 'SVC', 'ETT',
  '4.5', 'cm', 'mm', '%', '12', '0', '2021', '___', 'Dr.', 'vs.', 's/p', 'c/w', '(', ')', '[', ']', ',', '.', ';', ':', '-', '–', '—',
  '/', '?', '!', "'", '"', '“', '”', '°', '±', '≥', '≤', '×', 'µ', 'é', 'ü', 'ß', 'ñ', 'ç', 'ø', 'å',
  '中', '文', '日本', '한', 'ع', 'ש', 'न', 'ก', 'α', 'Ω', 'Ж', '😀', '👍🏽', '👨‍👩‍👧', '🇯🇵', '❤️', '∑', '√', '∞',
  '\u0301', '\u200D', '\u200B', '\u00A0', '\u3000', '\uFEFF', '\t', '\n', '\r\n', ' ', '  ', '▁', '<s>', '</s>', '<unk>', '<0x41>',
];

/** random mixtures of fragments with random separators */
function randomMixtures(count: number, seed: number): string[] {
  const r = rng(seed);
  const seps = [' ', ' ', ' ', '', '  ', '\n', '\t', '. ', ', ', '-'];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(r() * 14);
    let s = '';
    for (let j = 0; j < n; j++) {
      s += FRAGMENTS[Math.floor(r() * FRAGMENTS.length)];
      if (j + 1 < n) s += seps[Math.floor(r() * seps.length)];
    }
    if (r() < 0.15) s = ' ' + s;
    if (r() < 0.15) s += ' ';
    out.push(s);
  }
  return out;
}

/** random strings of code points drawn from assorted ranges (no surrogates) */
function randomCodePoints(count: number, seed: number): string[] {
  const r = rng(seed);
  const ranges: [number, number][] = [
    [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x00, 0x1f], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff],
    [0x590, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f], [0x2000, 0x206f], [0x2190, 0x22ff], [0x2500, 0x25ff], [0x3000, 0x30ff],
    [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xe0ff], [0xfe00, 0xfe0f], [0xff00, 0xffef], [0x1f300, 0x1faff], [0x1f1e6, 0x1f1ff],
    [0x1d400, 0x1d7ff], [0x20000, 0x2a6df], [0xe0000, 0xe007f],
  ];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(r() * 20);
    let s = '';
    for (let j = 0; j < n; j++) {
      const [lo, hi] = ranges[Math.floor(r() * ranges.length)]!;
      s += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
    }
    out.push(s);
  }
  return out;
}

/** longer passages: whole reports joined with newlines, and a very long one */
function passages(): string[] {
  const r = rng(7);
  const out: string[] = [];
  for (let i = 0; i < 12; i++) {
    const n = 3 + Math.floor(r() * 8);
    const lines: string[] = [];
    for (let j = 0; j < n; j++) lines.push(radiologyFindings[Math.floor(r() * radiologyFindings.length)]!);
    out.push(lines.join(i % 3 === 0 ? '\n' : i % 3 === 1 ? ' ' : '\r\n'));
  }
  out.push(radiologyFindings.join(' '));
  out.push(unicodeTexts.slice(0, 60).join(' '));
  return out;
}

export const TOKENIZER_CORPUS: CorpusSection[] = [
  { name: 'radiology', texts: radiologyFindings },
  { name: 'numbers and symbols', texts: numbersAndSymbols },
  { name: 'unicode', texts: unicodeTexts },
  { name: 'whitespace and edge cases', texts: whitespaceTexts },
  { name: 'ascii characters', texts: asciiTexts() },
  { name: 'unicode blocks', texts: blockTexts() },
  { name: 'code point sweep', texts: codePointSweep() },
  { name: 'random fragment mixtures', texts: randomMixtures(400, 12345) },
  { name: 'random code points', texts: randomCodePoints(300, 67890) },
  { name: 'passages', texts: passages() },
];

/** every text of the corpus, in order, without duplicates */
export function corpusTexts(): string[] {
  return [...new Set(TOKENIZER_CORPUS.flatMap((s) => s.texts))];
}
