// RadGraph's word tokenization of a report (radgraph/utils.py preprocess_reports, model_type "radgraph"):
//
//   re.sub("(?<! )(?=[/,-,:,.,!?()])|(?<=[/,-,:,.,!?()])(?! )", " ", report).split()
//
// The character class is / , : . ! ? ( ) (",-," is the range from ',' to ','; '-' is not in it), so every one
// of those characters becomes a word of its own and the rest is split on whitespace as Python's str.split()
// does (Unicode whitespace, \x1c-\x1f and \x85 included). Then DyGIEReader._normalize_word turns "/." and "/?"
// into "." and "?" (unreachable after the split above, kept for fidelity). RadGraph.forward replaces an empty
// report with "None" before all this.

const SPLIT_CHARS = new Set(['/', ',', ':', '.', '!', '?', '(', ')']);

/** Python's str.isspace() code points */
function isPythonSpace(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0 || c === 0x1680
    || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

/** the words RadGraph's model reads for one report */
export function radgraphWords(report: string): string[] {
  const text = report === '' ? 'None' : report;
  const words: string[] = [];
  let cur = '';
  const flush = () => {
    if (cur !== '') words.push(cur === '/.' || cur === '/?' ? cur.slice(1) : cur);
    cur = '';
  };
  for (const ch of text) {
    if (isPythonSpace(ch.codePointAt(0)!)) flush();
    else if (SPLIT_CHARS.has(ch)) {
      flush();
      words.push(ch);
    } else cur += ch;
  }
  flush();
  return words;
}
