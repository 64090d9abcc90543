// Python's notion of whitespace, for the scorers that split text with Python's str.split() / rstrip():
// the characters str.isspace() accepts (ASCII whitespace, the information separators 0x1C-0x1F, NEL,
// NBSP and the Unicode space separators), which differs from JavaScript's \s.

const PY_WS_CLASS = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS_RUN = new RegExp(`[${PY_WS_CLASS}]+`);
// one character (each of Python's whitespace characters is one UTF-16 unit). Strips scan with it: the regular
// expression /[ws]+$/ backtracks from every start in a run of whitespace that is not at the end, so its cost grows
// with the square of the run (64,000 spaces: 5.4 s)
const PY_WS_CHAR = new RegExp(`^[${PY_WS_CLASS}]$`);
const isPyWhitespace = (ch: string): boolean => PY_WS_CHAR.test(ch);

/** the body of a RegExp character class matching Python's whitespace (str.isspace(); `\s` of a str pattern) */
export function pyWhitespaceClass(): string {
  return PY_WS_CLASS;
}

/** Python's `s.split()` (no argument): the non-empty runs between whitespace */
export function pySplit(s: string): string[] {
  return s.split(PY_WS_RUN).filter((t) => t !== '');
}

/** Python's `s.rstrip()` (no argument) */
export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && isPyWhitespace(s[end - 1]!)) end--;
  return s.slice(0, end);
}

/** Python's `s.strip()` (no argument) */
export function pyStrip(s: string): string {
  let start = 0;
  while (start < s.length && isPyWhitespace(s[start]!)) start++;
  return pyRstrip(s.slice(start));
}

/** exactly rounded sum of doubles (Shewchuk's algorithm, as Python's math.fsum) */
export function fsum(xs: Iterable<number>): number {
  const partials: number[] = [];
  for (let x of xs) {
    let i = 0;
    for (let j = 0; j < partials.length; j++) {
      let y = partials[j]!;
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials.length = i;
    partials.push(x);
  }
  // round the partials' exact sum to nearest, as math.fsum does
  let n = partials.length;
  let hi = 0;
  if (n > 0) {
    hi = partials[--n]!;
    let lo = 0;
    while (n > 0) {
      const x = hi;
      const y = partials[--n]!;
      hi = x + y;
      const yr = hi - x;
      lo = y - yr;
      if (lo !== 0) break;
    }
    if (n > 0 && ((lo < 0 && partials[n - 1]! < 0) || (lo > 0 && partials[n - 1]! > 0))) {
      const y = lo * 2;
      const x = hi + y;
      const yr = x - hi;
      if (y === yr) hi = x;
    }
  }
  return hi;
}
