// `llava-rad pull`: download the official release from Hugging Face and convert it into the default model folder.

import { createInterface } from 'node:readline/promises';
import { CONVERT_TYPES, isConvertType } from '../convert/convert.js';
import { defaultModelFolder, llavaRadHome } from '../pull/home.js';
import { LICENSE_TERMS, licenseAccepted } from '../pull/license.js';
import { pull, type PullProgress } from '../pull/pull.js';
import { parse, round, UsageError, type Command, type Io } from './args.js';

async function askLicense(io: Io): Promise<boolean> {
  io.err(`${LICENSE_TERMS}\n`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question('Accept these terms? [y/N] ')).trim());
  } finally {
    rl.close();
  }
}

function progressBar(): (p: PullProgress) => void {
  let last = 0;
  let phase = '';
  return (p) => {
    const now = performance.now();
    if (p.phase === phase && now - last < 200 && p.bytesDone < p.bytesTotal) return;
    if (phase !== '' && p.phase !== phase) process.stderr.write('\n');
    phase = p.phase;
    last = now;
    const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : 1;
    const bar = '#'.repeat(Math.round(frac * 30)).padEnd(30, '-');
    const gb = p.phase === 'download' ? ` ${(p.bytesDone / 1e9).toFixed(2)}/${(p.bytesTotal / 1e9).toFixed(2)} GB` : '';
    process.stderr.write(`\r${`[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${p.phase}${gb} ${p.item}`.padEnd(110).slice(0, 110)}`);
  };
}

export const pullCommand: Command = {
  name: 'pull',
  summary: 'download the official weights from Hugging Face and convert them (research use only)',
  usage: `usage: llava-rad pull [--type f32|f16|q8_0|q5_k_m|q4_k_m] [--dir DIR] [--accept-license] [--keep-sources]
                      [--sources DIR] [--force] [--clip] [--json] [--quiet]

Downloads lmsys/vicuna-7b-v1.5 and microsoft/llava-rad (only the files the converter reads, about 16 GB),
converts them, then deletes the downloads. Interrupted downloads resume (FILE.part); every file is checked
against the size and sha256 Hugging Face lists.

  --type T           decoder weights: f32, f16 (default), q8_0, q5_k_m, q4_k_m (see llava-rad convert --help)
  --dir DIR          the model folder to write (default $LLAVA_RAD_HOME/models/llava-rad-<type>)
  --accept-license   accept the license terms (asked on a terminal otherwise; remembered in $LLAVA_RAD_HOME)
  --keep-sources     keep the downloads ($LLAVA_RAD_HOME/sources) after converting
  --sources DIR      download to DIR instead of $LLAVA_RAD_HOME/sources
  --force            convert again even if the model folder is already there
  --clip             also fetch microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract's vocab.txt and config.json and
                     write the CLIP GGUF (BiomedCLIP-CXR: llava-rad embed / classify)
  --json             print one JSON line with the result
  --quiet            no progress bar (it is shown on a terminal only)

Environment: LLAVA_RAD_HOME (default ~/.cache/llava-rad), HF_TOKEN (sent as a Bearer token to Hugging Face
only), HF_ENDPOINT (default https://huggingface.co). Afterwards 'llava-rad findings IMAGE' needs no --model.

The weights are for research use only, not for clinical care, and may not be redistributed; neither may
the converted files.`,
  async run(args, io, signal) {
    const v = parse(args, {
      type: { type: 'string' },
      dir: { type: 'string' },
      sources: { type: 'string' },
      'accept-license': { type: 'boolean' },
      'keep-sources': { type: 'boolean' },
      force: { type: 'boolean' },
      clip: { type: 'boolean' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
    }, 'pull');
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const type = v.type ?? 'f16';
    if (typeof type !== 'string' || !isConvertType(type)) throw new UsageError(`pull: --type must be one of ${CONVERT_TYPES.join(', ')}, got '${String(type)}'`);
    for (const k of ['dir', 'sources'] as const) {
      if (v[k] === '') throw new UsageError(`pull: --${k} must name a folder, got ''`);
    }
    const home = llavaRadHome();
    let accept = v['accept-license'] === true;
    if (!accept && !licenseAccepted(home)) {
      if (process.stdin.isTTY === true && process.stderr.isTTY === true) {
        accept = await askLicense(io);
        if (!accept) throw new UsageError('pull: the license terms were not accepted');
      } else {
        io.err(`${LICENSE_TERMS}\n`);
        throw new UsageError('pull: the license terms above must be accepted: run again with --accept-license');
      }
    }
    const tty = process.stderr.isTTY === true && v.quiet !== true && v.json !== true;
    const t0 = performance.now();
    let r;
    try {
      r = await pull({
        type,
        acceptLicense: accept,
        keepSources: v['keep-sources'] === true,
        force: v.force === true,
        ...(v.clip === true ? { clip: true } : {}),
        signal,
        ...(typeof v.dir === 'string' ? { dir: v.dir } : {}),
        ...(typeof v.sources === 'string' ? { sources: v.sources } : {}),
        ...(tty ? { onProgress: progressBar() } : {}),
      });
    } finally {
      if (tty) process.stderr.write('\n');
    }
    const seconds = (performance.now() - t0) / 1000;
    const isDefault = defaultModelFolder() === r.dir;
    if (v.json === true) {
      io.out(JSON.stringify({
        dir: r.dir, decoder: r.decoder, vision: r.vision, ...(r.clip ? { clip: r.clip } : {}), type: r.type, already_present: r.alreadyPresent,
        default_model: isDefault, sources_kept: r.sourcesKept, seconds: round(seconds),
        files: r.files.map((f) => ({ repo: f.repo, path: f.path, size: f.size, resumed_from: f.resumedFrom, downloaded: f.downloaded })),
      }) + '\n');
    } else {
      io.out(`${r.alreadyPresent ? 'already pulled' : `pulled and converted (${seconds.toFixed(1)} s)`}: ${r.dir}\n` +
        (r.sourcesKept ? `  downloads kept in ${r.sources.vicuna} and ${r.sources.llavaRad}\n` : '') +
        `run: llava-rad findings IMAGE${isDefault ? '' : ` --model ${r.dir}`}\n`);
    }
    return 0;
  },
};

