// PyTorch checkpoints (torch.save): the zip format (default since PyTorch 1.6) and the legacy
// non-zip format (`_use_new_zipfile_serialization=False`), read without executing anything.
//
//   const ckpt = await openTorchCheckpoint('pytorch_model.bin');
//   for (const [name, t] of ckpt.tensors) {           // the state dict, lazily
//     const data = await t.readFloat32();              // reads this tensor's bytes only
//   }
//   await ckpt.close();
//
// The pickle (data.pkl) is run by the restricted unpickler (unpickler.ts) with PyTorch's allowlist:
// collections.OrderedDict, torch._utils._rebuild_tensor(_v2), _rebuild_parameter(_with_state),
// torch._tensor._rebuild_from_type_v2 (over those), torch.*Storage / torch.UntypedStorage (storage types),
// torch dtypes, torch.Size, torch.device, set/frozenset, and the bytes builders Python's protocol 2 uses
// (_codecs.encode, bytes, bytearray). Every other global (os.system, builtins.eval, subprocess.Popen, ...)
// is refused with LlavaRadError 'UNSAFE_PICKLE'. Tensors become lazy descriptors {dtype, shape, stride,
// storage offset, storage}; a storage's bytes are read from its zip entry (or legacy file offset) on demand.
//
// Hostile files end in typed errors, in bounded time and memory: the pickle is at most MAX_PICKLE_BYTES
// (64 MiB) before it is inflated or parsed, the unpickler's own caps are PICKLE_LIMITS (unpickler.ts), and
// nothing here recurses into what a pickle built (state dicts are walked with an explicit stack, a depth
// limit and cycle detection; values are described in messages with describeValue, never stringified).

import type { FileHandle } from 'node:fs/promises';
import { LlavaRadError, describeValue } from '../errors.js';
import {
  DTYPE_SIZE, gatherStrided, isContiguous, openForRead, shapeNumel, toFloat32, type LazyTensor, type TensorDtype,
} from './tensor.js';
import { PyDict, PyGlobal, TRUNCATED, isPyTuple, pyInt, unpickle } from './unpickler.js';
import { ZipReader, readExactly } from './zip.js';

export { PyDict, PyGlobal, isPyTuple } from './unpickler.js';

/** a storage named by a persistent id: the bytes live in the zip entry `<archive>/data/<key>` */
export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: TensorDtype,
    readonly location: string,
    /** elements */
    readonly numel: number,
  ) {}
}

/** a tensor as the pickle describes it: a strided view of a storage */
export class TorchTensor {
  requiresGrad = false;
  constructor(
    readonly storage: TorchStorage,
    /** in elements of `dtype` */
    readonly storageOffset: number,
    readonly shape: readonly number[],
    /** in elements of `dtype` */
    readonly stride: readonly number[],
    /** the storage's type, or the explicit dtype of _rebuild_tensor_v3 (over an untyped byte storage) */
    readonly dtype: TensorDtype = storage.dtype,
  ) {}
  get numel(): number {
    return shapeNumel(this.shape);
  }
}

/** a torch storage type named in the pickle (torch.HalfStorage ...) */
export class TorchStorageType extends PyGlobal {
  constructor(module: string, name: string, readonly dtype: TensorDtype) {
    super(module, name);
  }
}

/** a torch dtype value named in the pickle (torch.float16 ...) */
export class TorchDtype extends PyGlobal {
  constructor(module: string, name: string, readonly dtype: TensorDtype) {
    super(module, name);
  }
}

const STORAGE_TYPES: Readonly<Record<string, TensorDtype>> = {
  DoubleStorage: 'F64', FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8',
  BoolStorage: 'BOOL', UntypedStorage: 'U8',
};

const TORCH_DTYPES: Readonly<Record<string, TensorDtype>> = {
  float64: 'F64', double: 'F64', float32: 'F32', float: 'F32', float16: 'F16', half: 'F16', bfloat16: 'BF16',
  int64: 'I64', long: 'I64', int32: 'I32', int: 'I32', int16: 'I16', short: 'I16', int8: 'I8', uint8: 'U8',
  bool: 'BOOL',
};

/** torch dtypes / storage types that exist but this reader does not handle */
const UNSUPPORTED_TORCH_TYPES = /^(complex\d*|cfloat|cdouble|chalf|uint(16|32|64)|float8_\w+|q(u?int\w+)|\w*(Complex|QInt|QUInt)\w*Storage)$/;

function badPickle(label: string, msg: string): LlavaRadError {
  return new LlavaRadError('BAD_CHECKPOINT', `${label}: ${msg}`);
}

function intArg(label: string, v: unknown, what: string): number {
  const i = pyInt(v);
  if (typeof i !== 'number' || i < 0) throw badPickle(label, `${what} must be a non-negative integer, got ${describeValue(v)}`);
  return i;
}

function intTuple(label: string, v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw badPickle(label, `${what} must be a tuple of integers`);
  if (v.length > 64) throw badPickle(label, `${what} has ${v.length} dimensions`);
  return v.map((x, i) => intArg(label, x, `${what}[${i}]`));
}

/** torch.device('cuda', 0) -> 'cuda:0'; only short strings and integers are accepted */
function torchDevice(label: string, args: readonly unknown[]): string {
  if (args.length > 2) throw badPickle(label, `torch.device takes a type and an index, got ${args.length} arguments`);
  return args.map((a) => {
    if ((typeof a === 'string' && a.length <= 64) || (typeof a === 'number' && Number.isSafeInteger(a))) return String(a);
    throw badPickle(label, `torch.device arguments must be a short string and an integer, got ${describeValue(a)}`);
  }).join(':');
}

/**
 * The cache key of a legacy storage view (PyTorch < 1.0: (view key, offset, size)): a short tuple of
 * strings and integers, keyed without recursing into anything the pickle built.
 */
function viewKey(label: string, key: string, view: unknown): string {
  if (!Array.isArray(view) || view.length > 8) {
    throw badPickle(label, `storage "${key}" has view metadata that is not a short tuple (got ${describeValue(view)})`);
  }
  return `${key}#${view.map((x) => {
    if (typeof x === 'string' && x.length <= 256) return JSON.stringify(x);
    if (typeof x === 'number' || typeof x === 'bigint') return String(x);
    throw badPickle(label, `storage "${key}" view metadata holds ${describeValue(x)} (expected strings and integers)`);
  }).join(',')}`;
}

function iterableArg(label: string, v: unknown, what: string): unknown[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v;
  if (v instanceof Set) return [...v];
  if (v instanceof PyDict) return [...v.keys()];
  throw badPickle(label, `${what}: expected an iterable`);
}

/** the global resolver for PyTorch pickles: data-only builders, everything else refused */
export function torchGlobals(label: string): (module: string, name: string) => PyGlobal | undefined {
  const rebuildTensor = (args: readonly unknown[], explicitDtype?: unknown): TorchTensor => {
    const [storage, offset, size, stride, requiresGrad] = args;
    if (!(storage instanceof TorchStorage)) throw badPickle(label, 'a tensor is rebuilt from something that is not a storage');
    let dtype = storage.dtype;
    if (explicitDtype !== undefined) {
      if (!(explicitDtype instanceof TorchDtype)) throw badPickle(label, '_rebuild_tensor_v3 needs a torch dtype');
      dtype = explicitDtype.dtype;
    }
    // elements of the tensor's dtype the storage holds
    const storageElems = Math.floor((storage.numel * DTYPE_SIZE[storage.dtype]) / DTYPE_SIZE[dtype]);
    const off = intArg(label, offset, 'storage offset');
    const shape = intTuple(label, size, 'tensor size');
    const st = intTuple(label, stride, 'tensor stride');
    if (shape.length !== st.length) throw badPickle(label, `tensor size [${shape.join(', ')}] and stride [${st.join(', ')}] differ in length`);
    const numel = shapeNumel(shape, label);
    if (numel > 0) {
      let last = off;
      for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * st[d]!;
      if (!Number.isSafeInteger(last) || last >= storageElems) {
        throw badPickle(label, `tensor [${shape.join(', ')}] (stride [${st.join(', ')}], offset ${off}) reaches element ${last} of a storage of ${storageElems}`);
      }
    }
    const t = new TorchTensor(storage, off, shape, st, dtype);
    t.requiresGrad = requiresGrad === true;
    return t;
  };
  const rebuildParameter = (args: readonly unknown[]): TorchTensor => {
    const [data, requiresGrad] = args;
    if (!(data instanceof TorchTensor)) throw badPickle(label, 'a parameter is rebuilt from something that is not a tensor');
    data.requiresGrad = requiresGrad === true;
    return data;
  };
  const tensorClass = new PyGlobal('torch', 'Tensor');
  const parameterClass = new PyGlobal('torch.nn.parameter', 'Parameter');
  const rebuilders = new Set<string>([
    'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v3', 'torch._utils._rebuild_parameter',
    'torch._utils._rebuild_parameter_with_state',
  ]);
  const orderedDict = (args: readonly unknown[]): PyDict => {
    const d = new PyDict('OrderedDict');
    for (const pair of iterableArg(label, args[0], 'OrderedDict')) {
      if (!Array.isArray(pair) || pair.length !== 2) throw badPickle(label, 'OrderedDict items must be pairs');
      d.set(pair[0], pair[1]);
    }
    return d;
  };
  const toBytes = (args: readonly unknown[]): Uint8Array => {
    if (args.length === 0) return new Uint8Array(0);
    const [v, encoding] = args;
    if (typeof v === 'string') {
      const e = typeof encoding === 'string' ? encoding.toLowerCase().replace(/[-_]/g, '') : 'utf8';
      if (e === 'latin1' || e === 'iso88591') return new Uint8Array(Buffer.from(v, 'latin1'));
      if (e === 'utf8' || e === 'ascii') return new Uint8Array(Buffer.from(v, 'utf8'));
      throw badPickle(label, `unsupported bytes encoding ${describeValue(encoding)}`);
    }
    if (v instanceof Uint8Array) return new Uint8Array(v);
    const items = iterableArg(label, v, 'bytes');
    return Uint8Array.from(items.map((x) => {
      const i = pyInt(x);
      if (typeof i !== 'number' || i < 0 || i > 255) throw badPickle(label, 'bytes items must be integers 0..255');
      return i;
    }));
  };

  return (module: string, name: string): PyGlobal | undefined => {
    const full = `${module}.${name}`;
    switch (full) {
      case 'collections.OrderedDict':
        return new PyGlobal(module, name, (args) => orderedDict(args));
      case 'torch._utils._rebuild_tensor_v2':
      case 'torch._utils._rebuild_tensor':
        return new PyGlobal(module, name, (args) => rebuildTensor(args));
      case 'torch._utils._rebuild_tensor_v3': // (storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])
        return new PyGlobal(module, name, (args) => rebuildTensor(args, args[6] ?? null));
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        return new PyGlobal(module, name, (args) => rebuildParameter(args));
      case 'torch._tensor._rebuild_from_type_v2':
        return new PyGlobal(module, name, (args) => {
          const [func, newType, fargs] = args;
          if (!(func instanceof PyGlobal) || !rebuilders.has(func.toString()) || !func.call) {
            throw new LlavaRadError('UNSAFE_PICKLE', `${label}: _rebuild_from_type_v2 over ${func instanceof PyGlobal ? func.toString() : describeValue(func)} refused`);
          }
          if (!(newType instanceof PyGlobal) || (newType.toString() !== 'torch.Tensor' && newType.toString() !== 'torch.nn.parameter.Parameter')) {
            throw new LlavaRadError('UNSAFE_PICKLE', `${label}: _rebuild_from_type_v2 into ${newType instanceof PyGlobal ? newType.toString() : describeValue(newType)} refused`);
          }
          if (!Array.isArray(fargs)) throw badPickle(label, '_rebuild_from_type_v2 arguments are not a tuple');
          return func.call(fargs, 'reduce');
        });
      case 'torch.Tensor':
        return tensorClass;
      case 'torch.nn.parameter.Parameter':
        return parameterClass;
      case 'torch.Size':
        return new PyGlobal(module, name, (args) => Object.freeze(intTuple(label, iterableArg(label, args[0], 'torch.Size'), 'torch.Size')));
      case 'torch.device':
        return new PyGlobal(module, name, (args) => torchDevice(label, args));
      case 'builtins.set':
        return new PyGlobal(module, name, (args) => new Set(iterableArg(label, args[0], 'set')));
      case 'builtins.frozenset':
        return new PyGlobal(module, name, (args) => Object.freeze(new Set(iterableArg(label, args[0], 'frozenset'))));
      case 'builtins.bytes': case 'builtins.bytearray':
      case '_codecs.encode':
        return new PyGlobal(module, name, (args) => toBytes(args));
      default:
        break;
    }
    if (module === 'torch' && Object.prototype.hasOwnProperty.call(STORAGE_TYPES, name)) {
      return new TorchStorageType(module, name, STORAGE_TYPES[name]!);
    }
    if (module === 'torch' && Object.prototype.hasOwnProperty.call(TORCH_DTYPES, name)) {
      return new TorchDtype(module, name, TORCH_DTYPES[name]!);
    }
    if (module === 'torch' && UNSUPPORTED_TORCH_TYPES.test(name)) {
      throw new LlavaRadError('UNSUPPORTED', `${label}: tensors of type torch.${name} are not supported (F32/F16/BF16/F64 and integer types are)`);
    }
    return undefined;
  };
}

/**
 * Unpickles a PyTorch pickle. `storage(pid)` turns a persistent id's fields into a TorchStorage
 * (one per key: tensors sharing a storage share the object).
 */
export function unpickleTorch(
  buf: Uint8Array, label: string, makeStorage: (key: string, dtype: TensorDtype, location: string, numel: number, view: unknown) => TorchStorage,
  start = 0,
): { value: unknown; end: number } {
  const storages = new Map<string, TorchStorage>();
  return unpickle(buf, {
    label,
    resolveGlobal: torchGlobals(label),
    persistentLoad: (pid) => {
      if (!isPyTuple(pid) || pid[0] !== 'storage' || pid.length < 5) {
        throw badPickle(label, `unsupported persistent id ${isPyTuple(pid) ? `(${describeValue(pid[0])}, ...)` : describeValue(pid)}`);
      }
      const [, type, keyV, location, numelV, view] = pid;
      let dtype: TensorDtype;
      if (type instanceof TorchStorageType) dtype = type.dtype;
      else if (type instanceof TorchDtype) dtype = type.dtype; // (newer) storage typed by a dtype
      else throw badPickle(label, `persistent id names an unknown storage type ${type instanceof PyGlobal ? type.toString() : describeValue(type)}`);
      const key = typeof keyV === 'number' ? String(keyV) : keyV;
      if (typeof key !== 'string' || key.length === 0 || key.length > 256) throw badPickle(label, 'bad storage key');
      const numel = intArg(label, numelV, 'storage size');
      if (typeof location !== 'string' || location.length > 256) {
        throw badPickle(label, `storage "${key}" has location ${describeValue(location)} (expected a device name such as "cpu")`);
      }
      const cacheKey = view == null ? key : viewKey(label, key, view);
      const cached = storages.get(cacheKey);
      if (cached) {
        if (cached.dtype !== dtype || cached.numel !== numel) {
          throw badPickle(label, `storage "${key}" is named with two different types or sizes`);
        }
        return cached;
      }
      const s = makeStorage(key, dtype, location, numel, view);
      storages.set(cacheKey, s);
      return s;
    },
  }, start);
}

// ------------------------------------------------------------------------------------------------
// state dict helpers

export interface ExtractOptions {
  /** wrapper keys to descend into, in order of preference (default ['state_dict', 'model', 'module']) */
  wrappers?: readonly string[];
  /** how deep nested dicts are flattened (default 32) */
  maxDepth?: number;
  /** the most dict entries visited while flattening (default 1 million; a real state dict has thousands) */
  maxEntries?: number;
}

export interface ExtractedStateDict {
  /** tensors by dotted name, in pickle order */
  tensors: Map<string, TorchTensor>;
  /** dotted names of non-tensor leaves that were skipped (ints, floats, strings, lists, None ...) */
  skipped: string[];
}

/**
 * Finds the state dict in an unpickled checkpoint and flattens it to name -> tensor.
 *
 * 1. Unwrap: while the value is a dict with a key from `wrappers` ('state_dict', 'model', 'module')
 *    whose value is itself a dict, descend into it (an open_clip training checkpoint is
 *    {'epoch', 'name', 'state_dict': {...}, 'optimizer': {...}}: only 'state_dict' is kept).
 * 2. Flatten: string-keyed nested dicts are joined with '.'; tensor leaves are kept; every other leaf
 *    (numbers, strings, lists, None, ...) is listed in `skipped`.
 * Two leaves flattening to the same name are a BAD_CHECKPOINT error.
 */
export function extractStateDict(root: unknown, label = 'checkpoint', options: ExtractOptions = {}): ExtractedStateDict {
  const wrappers = options.wrappers ?? ['state_dict', 'model', 'module'];
  const maxDepth = options.maxDepth ?? 32;
  let cur = root;
  for (let i = 0; i < 8 && cur instanceof PyDict; i++) {
    const w = wrappers.find((k) => cur instanceof PyDict && cur.get(k) instanceof PyDict);
    if (w === undefined) break;
    cur = (cur as PyDict).get(w);
  }
  if (!(cur instanceof PyDict)) {
    if (cur instanceof TorchTensor) throw badPickle(label, 'the checkpoint holds a single tensor, not a state dict');
    throw badPickle(label, 'the checkpoint does not hold a dict of tensors');
  }
  const tensors = new Map<string, TorchTensor>();
  const skipped: string[] = [];
  // the memo lets a pickle share one dict many times over (a DAG of 2^n paths); bound the work
  let budget = options.maxEntries ?? 1_000_000;
  let chars = MAX_NAME_CHARS;
  // depth first, in pickle order, with an explicit stack (no recursion, however deep the pickle nests);
  // a dict met again on its own path is a cycle
  const path: Array<{ dict: PyDict; items: Iterator<[unknown, unknown]>; prefix: string }> = [];
  const onPath = new Set<PyDict>();
  const enter = (d: PyDict, prefix: string): void => {
    if (onPath.has(d)) throw badPickle(label, `the state dict contains itself (a cycle at "${prefix.slice(0, -1)}")`);
    if (path.length > maxDepth) throw badPickle(label, `state dict nested deeper than ${maxDepth}`);
    path.push({ dict: d, items: d.entries(), prefix });
    onPath.add(d);
  };
  enter(cur, '');
  while (path.length > 0) {
    const level = path[path.length - 1]!;
    const next = level.items.next();
    if (next.done) {
      path.pop();
      onPath.delete(level.dict);
      continue;
    }
    const [k, v] = next.value;
    if (--budget < 0) throw badPickle(label, 'the state dict has too many entries (shared sub-dicts?)');
    const name = level.prefix + keyName(k);
    if (name.length > MAX_NAME) throw badPickle(label, `a state dict name is ${name.length} characters long (at most ${MAX_NAME})`);
    if ((chars -= name.length) < 0) throw badPickle(label, `the state dict's names add up to more than ${MAX_NAME_CHARS} characters (shared sub-dicts?)`);
    if (v instanceof TorchTensor) {
      if (tensors.has(name)) throw badPickle(label, `two tensors are named "${name}"`);
      tensors.set(name, v);
    } else if (v instanceof PyDict) {
      enter(v, `${name}.`);
    } else {
      skipped.push(name);
    }
  }
  return { tensors, skipped };
}

/** the longest dotted state-dict name accepted (real ones are under 200 characters) */
const MAX_NAME = 4096;
/** the most characters all state-dict names may add up to (real ones: well under a million) */
const MAX_NAME_CHARS = 1 << 26;

/** a state-dict key as a name part: strings as they are, numbers as digits, anything else described */
function keyName(k: unknown): string {
  if (typeof k === 'string') return k;
  if (k === null || (typeof k !== 'object' && typeof k !== 'function')) return String(k);
  return `<${describeValue(k)}>`;
}

/**
 * Strips a leading `prefix` (default 'module.', what torch.nn.DataParallel / DistributedDataParallel add)
 * from every key that starts with it; other keys are kept as they are. Order is preserved. A stripped
 * name colliding with another key is a BAD_CHECKPOINT error.
 */
export function stripModulePrefix<T>(tensors: ReadonlyMap<string, T>, prefix = 'module.'): Map<string, T> {
  const out = new Map<string, T>();
  for (const [k, v] of tensors) {
    const name = k.startsWith(prefix) ? k.slice(prefix.length) : k;
    if (out.has(name)) throw new LlavaRadError('BAD_CHECKPOINT', `stripping "${prefix}" makes two tensors named "${name}"`);
    out.set(name, v);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// files

/** the bytes behind storages: reads `length` bytes at byte `start` of a storage */
type StorageBytes = (storage: TorchStorage, start: number, length: number) => Promise<Buffer>;

class PickledTensor implements LazyTensor {
  readonly numel: number;
  constructor(readonly name: string, readonly tensor: TorchTensor, private readonly bytes: StorageBytes) {
    this.numel = tensor.numel;
  }
  get dtype(): TensorDtype {
    return this.tensor.dtype;
  }
  get shape(): readonly number[] {
    return this.tensor.shape;
  }
  async readRaw(): Promise<Buffer> {
    const t = this.tensor;
    const size = DTYPE_SIZE[t.dtype];
    if (this.numel === 0) return Buffer.alloc(0);
    if (isContiguous(t.shape, t.stride)) return this.bytes(t.storage, t.storageOffset * size, this.numel * size);
    // a strided view: read the span it covers (strides are non-negative) and gather
    let last = t.storageOffset;
    for (let d = 0; d < t.shape.length; d++) last += (t.shape[d]! - 1) * t.stride[d]!;
    const span = await this.bytes(t.storage, t.storageOffset * size, (last - t.storageOffset + 1) * size);
    return gatherStrided(span, t.storageOffset, size, t.shape, t.stride, t.storageOffset);
  }
  async readFloat32(): Promise<Float32Array> {
    return toFloat32(await this.readRaw(), this.dtype);
  }
}

export interface TorchCheckpoint {
  readonly path: string;
  readonly format: 'zip' | 'legacy';
  /** the unpickled object (dicts are PyDict, tensors TorchTensor) */
  readonly root: unknown;
  /** the state dict (extractStateDict of root), lazily readable, names as stored */
  readonly tensors: ReadonlyMap<string, LazyTensor>;
  /** non-tensor leaves of the state dict that were skipped */
  readonly skipped: readonly string[];
  /** a lazy tensor for any TorchTensor found in `root` (e.g. optimizer state) */
  lazy(name: string, tensor: TorchTensor): LazyTensor;
  /** bytes read from the file so far */
  bytesRead(): number;
  close(): Promise<void>;
}

/**
 * The largest pickle read: a zip checkpoint's data.pkl (its inflated size, checked before inflating) or
 * the pickles at the head of a legacy file. A real one is at most a few MB (it holds names, shapes and
 * storage keys; the weights are stored apart), so anything bigger is refused as a pickle bomb.
 */
export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/**
 * Opens a PyTorch checkpoint (zip or legacy format; the legacy tar format of PyTorch < 0.4 and TorchScript
 * archives are refused with UNSUPPORTED) and unpickles its object with the restricted unpickler.
 */
export async function openTorchCheckpoint(path: string, options: ExtractOptions = {}): Promise<TorchCheckpoint> {
  const fh = await openForRead(path);
  let head: Buffer;
  let size: number;
  try {
    size = (await fh.stat()).size;
    head = await readExactly(fh, 0, Math.min(size, 512), path);
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
    await fh.close();
    return openZipCheckpoint(path, options);
  }
  if (head.length > 262 && head.toString('latin1', 257, 262) === 'ustar') {
    await fh.close();
    throw new LlavaRadError('UNSUPPORTED', `${path}: a tar-format PyTorch checkpoint (PyTorch < 0.4); re-save it with a current PyTorch`);
  }
  // anything else is read as a legacy pickle (as torch.load does), through the restricted unpickler
  try {
    return await openLegacyCheckpoint(path, fh, size, options);
  } catch (e) {
    await fh.close().catch(() => {});
    if (head[0] !== 0x80 && e instanceof LlavaRadError && e.code === 'BAD_CHECKPOINT') {
      throw new LlavaRadError('BAD_CHECKPOINT', `${path}: not a PyTorch checkpoint (neither a zip archive nor a pickle): ${e.message}`, { cause: e });
    }
    throw e;
  }
}

function makeCheckpoint(
  path: string, format: 'zip' | 'legacy', root: unknown, bytes: StorageBytes, options: ExtractOptions,
  bytesRead: () => number, close: () => Promise<void>,
): TorchCheckpoint {
  const { tensors, skipped } = extractStateDict(root, path, options);
  const lazy = new Map<string, LazyTensor>();
  for (const [name, t] of tensors) lazy.set(name, new PickledTensor(name, t, bytes));
  return {
    path, format, root, tensors: lazy, skipped,
    lazy: (name, tensor) => new PickledTensor(name, tensor, bytes),
    bytesRead,
    close,
  };
}

async function openZipCheckpoint(path: string, options: ExtractOptions): Promise<TorchCheckpoint> {
  const zip = await ZipReader.open(path);
  try {
    const pkls = zip.entries().filter((e) => /^([^/]+\/)?data\.pkl$/.test(e.name));
    if (pkls.length !== 1) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${path}: expected one <archive>/data.pkl in the zip, found ${pkls.length}`);
    }
    const prefix = pkls[0]!.name.slice(0, -'data.pkl'.length);
    if (zip.has(`${prefix}constants.pkl`) || zip.entries().some((e) => e.name.startsWith(`${prefix}code/`))) {
      throw new LlavaRadError('UNSUPPORTED', `${path}: a TorchScript archive (torch.jit.save), not a torch.save checkpoint`);
    }
    if (zip.has(`${prefix}byteorder`)) {
      const order = (await zip.readAll(`${prefix}byteorder`, 16)).toString('latin1');
      if (order !== 'little') throw new LlavaRadError('UNSUPPORTED', `${path}: byte order "${order}" (only little-endian checkpoints are supported)`);
    }
    if (pkls[0]!.uncompressedSize > MAX_PICKLE_BYTES) {
      throw new LlavaRadError('BAD_CHECKPOINT',
        `${path}: ${pkls[0]!.name} is ${pkls[0]!.uncompressedSize} bytes (inflated); a checkpoint's pickle may be at most ${MAX_PICKLE_BYTES} bytes (64 MiB)`);
    }
    const pkl = await zip.readAll(pkls[0]!, MAX_PICKLE_BYTES);
    const { value } = unpickleTorch(pkl, `${path}: ${pkls[0]!.name}`, (key, dtype, location, numel, view) => {
      if (view != null) throw badPickle(path, `storage "${key}" has view metadata (legacy only)`);
      const entryName = `${prefix}data/${key}`;
      if (!zip.has(entryName)) throw badPickle(path, `storage "${key}" has no entry ${entryName}`);
      const have = zip.entry(entryName).uncompressedSize;
      if (have < numel * DTYPE_SIZE[dtype]) {
        throw badPickle(path, `storage "${key}" needs ${numel * DTYPE_SIZE[dtype]} bytes but ${entryName} has ${have}`);
      }
      return new TorchStorage(key, dtype, location, numel);
    });
    const bytes: StorageBytes = (s, start, length) => zip.read(`${prefix}data/${s.key}`, start, length);
    return makeCheckpoint(path, 'zip', value, bytes, options, () => zip.bytesRead, () => zip.close());
  } catch (e) {
    await zip.close();
    throw e;
  }
}

/**
 * The legacy format: five pickles back to back (magic number, protocol version 1001, sys_info, the object,
 * the list of storage keys in file order), then for each key an int64 element count and the raw elements.
 */
async function openLegacyCheckpoint(path: string, fh: FileHandle, size: number, options: ExtractOptions): Promise<TorchCheckpoint> {
  let counted = 0;
  const src = {
    read: async (b: Buffer, o: number, l: number, p: number) => {
      const r = await fh.read(b, o, l, p);
      counted += r.bytesRead;
      return r;
    },
  };
  let want = Math.min(size, 1 << 20);
  for (;;) {
    const buf = await readExactly(src, 0, want, path);
    const storages = new Map<string, TorchStorage>();
    try {
      const label = `${path} (legacy format)`;
      const plain = { label, resolveGlobal: () => undefined };
      const magic = unpickle(buf, plain);
      if (magic.value !== LEGACY_MAGIC) throw new LlavaRadError('BAD_CHECKPOINT', `${path}: a pickle, but not a PyTorch checkpoint (no legacy magic number)`);
      const proto = unpickle(buf, plain, magic.end);
      if (proto.value !== LEGACY_PROTOCOL) throw new LlavaRadError('UNSUPPORTED', `${path}: legacy protocol version ${describeValue(proto.value)}`);
      const sys = unpickle(buf, plain, proto.end);
      if (sys.value instanceof PyDict && sys.value.get('little_endian') === false) {
        throw new LlavaRadError('UNSUPPORTED', `${path}: big-endian checkpoint`);
      }
      const obj = unpickleTorch(buf, label, (key, dtype, location, numel, view) => {
        if (view != null) throw new LlavaRadError('UNSUPPORTED', `${path}: storage views (PyTorch < 1.0 checkpoints)`);
        const s = new TorchStorage(key, dtype, location, numel);
        storages.set(key, s);
        return s;
      }, sys.end);
      const keys = unpickle(buf, plain, obj.end);
      if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) {
        throw new LlavaRadError('BAD_CHECKPOINT', `${path}: legacy storage key list is not a list of strings`);
      }
      // locate each storage's bytes: int64 count, then count * element size bytes
      const offsets = new Map<string, number>();
      let p = keys.end;
      const hdr = Buffer.alloc(8);
      for (const k of keys.value as string[]) {
        const s = storages.get(k);
        if (!s) throw new LlavaRadError('BAD_CHECKPOINT', `${path}: storage key "${k}" is not used by the object`);
        if (offsets.has(k)) throw new LlavaRadError('BAD_CHECKPOINT', `${path}: storage key "${k}" is listed twice`);
        if (p + 8 > size) throw new LlavaRadError('BAD_CHECKPOINT', `${path}: truncated before storage "${k}"`);
        await readExactly(src, p, 8, path, hdr);
        const n = hdr.readBigInt64LE(0);
        if (n !== BigInt(s.numel)) throw new LlavaRadError('BAD_CHECKPOINT', `${path}: storage "${k}" has ${n} elements, the pickle says ${s.numel}`);
        p += 8;
        offsets.set(k, p);
        p += s.numel * DTYPE_SIZE[s.dtype];
        if (p > size) throw new LlavaRadError('BAD_CHECKPOINT', `${path}: storage "${k}" runs past the end of the file`);
      }
      for (const k of storages.keys()) {
        if (!offsets.has(k)) throw new LlavaRadError('BAD_CHECKPOINT', `${path}: storage "${k}" has no data`);
      }
      const bytes: StorageBytes = (s, start, length) => {
        const base = offsets.get(s.key)!;
        if (start < 0 || start + length > s.numel * DTYPE_SIZE[s.dtype]) {
          throw new LlavaRadError('BAD_CHECKPOINT', `${path}: read outside storage "${s.key}"`);
        }
        return readExactly(src, base + start, length, path);
      };
      return makeCheckpoint(path, 'legacy', obj.value, bytes, options, () => counted, () => fh.close());
    } catch (e) {
      if (e instanceof LlavaRadError && TRUNCATED.has(e) && want < size) {
        if (want >= MAX_PICKLE_BYTES) {
          throw new LlavaRadError('BAD_CHECKPOINT',
            `${path}: the legacy checkpoint's pickles run past their first ${MAX_PICKLE_BYTES} bytes (64 MiB, the limit for a checkpoint's pickle)`, { cause: e });
        }
        want = Math.min(size, want * 4, MAX_PICKLE_BYTES);
        continue;
      }
      throw e;
    }
  }
}
