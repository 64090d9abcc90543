// JSON-aware mutation: walk a parsed JSON value, replace numbers with huge / negative / fractional / nested
// values, strings with odd ones, swap or duplicate entries, change types; then serialize, sometimes with a
// duplicated key or a text-level mutation. Used for safetensors headers, shard indexes, model-folder
// manifests and JSON batch manifests.
import { mutateBytes } from './bytes.mjs';

const HUGE_NUMBERS = [0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308, 1.5, -0.5, 1e-300, 4294967295, 9007199254740993];
const ODD_STRINGS = ['', ' ', '\u0000', '../x', '/etc/passwd', 'a/b', 'x\\y', '.', '..', '\ud800', '\uffff', 'é'.repeat(2000), 'x'.repeat(70000), '__proto__', 'constructor', 'F32', 'BF16', 'I64', 'BOOL', 'F8_E4M3', 'U64', 'null'];

/** every [parent, key] in the tree (the root has parent null) */
function slots(v, out = [], parent = null, key = null, depth = 0) {
  out.push([parent, key]);
  if (depth > 50) return out;
  if (Array.isArray(v)) v.forEach((x, i) => slots(x, out, v, i, depth + 1));
  else if (v && typeof v === 'object') for (const k of Object.keys(v)) slots(v[k], out, v, k, depth + 1);
  return out;
}

/** whether `target` is `from` or inside it */
function reaches(from, target, depth = 0) {
  if (from === target) return true;
  if (!from || typeof from !== 'object' || depth > 60) return false;
  return Object.values(from).some((v) => reaches(v, target, depth + 1));
}

/** an own property, even "__proto__" (as JSON.parse makes it), never the prototype */
function put(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function oddValue(rng, old) {
  switch (rng.int(10)) {
    case 0: return rng.pick(HUGE_NUMBERS);
    case 1: return rng.pick(ODD_STRINGS);
    case 2: return null;
    case 3: return rng.chance(0.5);
    case 4: return [];
    case 5: return {};
    case 6: return Array.from({ length: rng.pick([2, 9, 100, 10000]) }, () => rng.pick(HUGE_NUMBERS));
    case 7: { let x = old; for (let i = rng.pick([2, 10, 1000]); i > 0; i--) x = [x]; return x; }
    case 8: return typeof old === 'number' ? -old : typeof old === 'string' ? old.repeat(Math.min(rng.pick([2, 100, 5000]), Math.ceil(4e6 / (old.length + 1)))) : [old, old];
    default: return typeof old === 'number' ? old + rng.pick([-1, 1, 2 ** 20, -(2 ** 20)]) : String(old);
  }
}

/** mutates a parsed JSON value (a deep copy is made); returns the new value */
export function mutateJsonValue(value, rng, count = rng.count(4, 1.8)) {
  let root = structuredClone(value);
  for (let i = 0; i < count; i++) {
    const all = slots(root);
    const [parent, key] = rng.pick(all);
    const old = parent === null ? root : parent[key];
    const op = rng.weighted({ replace: 6, swap: 2, drop: 1, dup: 1, rename: 1 });
    if (parent === null) {
      root = op === 'replace' ? oddValue(rng, root) : root;
      continue;
    }
    if (op === 'replace') parent[key] = oddValue(rng, old);
    else if (op === 'swap') {
      const [p2, k2] = rng.pick(all);
      // never swap a value with one inside it (that would make a cycle, which JSON cannot hold)
      if (p2 !== null && !reaches(old, p2) && !reaches(p2[k2], parent)) [parent[key], p2[k2]] = [p2[k2], old];
    } else if (op === 'drop') {
      if (Array.isArray(parent)) parent.splice(key, 1);
      else delete parent[key];
    } else if (op === 'dup') {
      if (Array.isArray(parent)) parent.splice(key, 0, ...Array(rng.pick([1, 10, 1000])).fill(old));
      else put(parent, `${key}${rng.pick(['', '_', '.1', 'x'.repeat(300)])}`, structuredClone(old));
    } else if (!Array.isArray(parent)) {
      delete parent[key];
      put(parent, rng.pick(['', '__metadata__', '__proto__', 'a'.repeat(5000), String(key).toUpperCase(), 'weight_map', 'decoder', 'vision']), old);
    }
  }
  return root;
}

/** serializes, sometimes with a duplicated key or a few text-level byte mutations */
export function jsonBytes(value, rng) {
  const indent = rng.chance(0.2) ? 1 : undefined;
  let text;
  try {
    text = JSON.stringify(value, null, indent) ?? 'null';
  } catch {
    // shared sub-trees duplicated over and over, or deep nesting indented: compact, and past about 64 MB of
    // text the rest becomes null
    let n = 0;
    text = JSON.stringify(value, (k, v) => ((n += 8 + k.length + (typeof v === 'string' ? v.length : 0)) > 64e6 ? null : v));
  }
  if (rng.chance(0.15)) {
    // a duplicate key: JSON.parse keeps the last one; other readers keep the first
    const m = /"([^"\\]{1,80})":/.exec(text.slice(rng.int(Math.max(1, text.length - 100))));
    if (m) text = text.replace('{', `{"${m[1]}":${JSON.stringify(oddValue(rng, 0))},`);
  }
  let buf = Buffer.from(text, 'utf8');
  if (rng.chance(0.25)) buf = mutateBytes(buf, rng, { count: rng.count(3, 1.5) });
  return buf;
}
