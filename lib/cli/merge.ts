// `llava-rad merge`: the shards of a batch job into one predictions file.

import { readManifest } from '../batch/manifest.js';
import { mergePredictions, writeMerged } from '../batch/merge.js';
import { parseWithPositionals, requireFile, requireOutputFile, UsageError, type Command } from './args.js';
import { EXIT_SOME_FAILED, formatArg } from './batch.js';

const list = (ids: string[], n = 10) => ids.slice(0, n).map((id) => JSON.stringify(id)).join(', ') + (ids.length > n ? `, ... (${ids.length - n} more)` : '');

export const mergeCommand: Command = {
  name: 'merge',
  summary: 'merge the predictions files of a sharded batch job (dedupe by id, check the model)',
  usage: `Usage: llava-rad merge OUT.jsonl SHARD.jsonl [SHARD.jsonl ...] [options]

Writes one record per study id to OUT.jsonl (atomically; OUT may also be an input). Within a file the
last record of an id counts (a retried failure appends a newer one); across files a successful record
wins over a failed one, then the newer. All records must come from the same model (the two GGUFs'
sha256) and settings, else nothing is written (error MODEL_MISMATCH).

Options:
      --manifest FILE     check completeness against the manifest and write in its order
      --format F          the manifest's format: jsonl | csv | json (default: from the extension)
      --mimic-test-filter the manifest filter batch used (see llava-rad batch --help)
      --drop-failed       leave failed records out (the official metric scripts need a prediction per line)
      --json              print a JSON summary on stdout
  -h, --help              this help

Exit status: 0 complete (with --manifest: every study) and no failed records; 3 some studies are missing
or failed; 1 an error (e.g. MODEL_MISMATCH, BAD_PREDICTIONS); 2 bad arguments.`,
  async run(args, io) {
    const { values: v, positionals } = parseWithPositionals(args, {
      manifest: { type: 'string' },
      format: { type: 'string' },
      'mimic-test-filter': { type: 'boolean' },
      'drop-failed': { type: 'boolean' },
      json: { type: 'boolean' },
    }, 'merge', Number.MAX_SAFE_INTEGER);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const [out, ...inputs] = positionals;
    if (!out || inputs.length === 0) throw new UsageError('merge: expected OUT.jsonl and at least one predictions file to merge');
    for (const f of inputs) requireFile('merge', 'predictions', f);
    requireOutputFile('merge', 'OUT', out);
    const format = formatArg(v.format);
    let manifestIds: string[] | undefined;
    if (v.manifest !== undefined) {
      const manifest = requireFile('merge', '--manifest', v.manifest, { fifo: true });
      // the ids in order, and nothing else of the studies (a manifest of millions with references)
      const ids: string[] = [];
      readManifest(manifest, { ...(format ? { format } : {}), mimicTestFilter: v['mimic-test-filter'] === true, keep: (id) => {
        ids.push(id);
        return false;
      } });
      manifestIds = ids;
    } else if (format !== undefined || v['mimic-test-filter']) {
      throw new UsageError('merge: --format and --mimic-test-filter describe the --manifest, which is missing');
    }
    const r = mergePredictions({ inputs, ...(manifestIds ? { manifestIds } : {}), dropFailed: v['drop-failed'] === true });
    writeMerged(out, inputs, r.records);
    const code = r.missing.length > 0 || r.failed > 0 ? EXIT_SOME_FAILED : 0;
    for (const d of r.damaged) io.err(`llava-rad merge: warning: ignored the damaged last line of ${d.file} (${d.why})\n`);
    if (r.duplicates.length) io.err(`llava-rad merge: ${r.duplicates.length} id(s) in more than one file (kept one record each): ${list(r.duplicates)}\n`);
    if (r.extra.length) io.err(`llava-rad merge: warning: ${r.extra.length} id(s) not in the manifest (kept): ${list(r.extra)}\n`);
    if (r.missing.length) io.err(`llava-rad merge: ${r.missing.length} study id(s) of the manifest have no record: ${list(r.missing)}\n`);
    io.err(`llava-rad merge: wrote ${r.records.length} records to ${out} from ${inputs.length} file(s): ${r.ok} with findings, ${r.failed} failed${r.dropped ? ` (left out)` : ''}${manifestIds ? `, ${r.missing.length} missing of ${manifestIds.length}` : ''}\n`);
    if (v.json) {
      io.out(JSON.stringify({
        out, records: r.records.length, ok: r.ok, failed: r.failed, dropped: r.dropped,
        duplicates: r.duplicates, missing: r.missing, extra: r.extra, exit_code: code,
      }) + '\n');
    }
    return code;
  },
};
