// Hands studies to engines, each engine `slots` at a time, and journals every outcome as it comes. An
// aborted study is not recorded (a re-run does it); a study whose engine died is recorded as failed
// (INTERNAL) so that one poisonous input cannot stop a job forever, and that engine takes no more work.

import { isLlavaRadError } from '../errors.js';
import { EngineLost, type Engine } from './engine.js';
import type { Journal } from './journal.js';
import type { Study } from './manifest.js';
import { failureRecord, successRecord, type ModelIdentity, type PredictionRecord, type RunParams } from './record.js';

export interface RunOptions {
  studies: Study[];
  engines: Engine[];
  journal: Journal;
  model: ModelIdentity;
  params: RunParams;
  signal: AbortSignal;
  /** before each record is appended: throws when the output is no longer this run's (its lock was lost) */
  verify?: () => void;
  /** after each record is durable */
  onRecord?: (record: PredictionRecord) => void;
}

export interface RunSummary {
  ok: number;
  failed: number;
  /** studies never handed to an engine (stopped early: aborted, or every engine gone) */
  notAttempted: number;
  /** engines that died during the run */
  enginesLost: number;
}

export async function runStudies(o: RunOptions): Promise<RunSummary> {
  const fatal = new AbortController(); // a journal write failed: stop everything
  const signal = AbortSignal.any([o.signal, fatal.signal]);
  let next = 0;
  let started = 0;
  const summary: RunSummary = { ok: 0, failed: 0, notAttempted: 0, enginesLost: 0 };
  let fatalError: unknown = null;
  const lost = new Set<Engine>();

  const record = (r: PredictionRecord) => {
    try {
      o.journal.testPause('before-record', r); // test-only (LLAVA_RAD_TEST_PAUSE): the study is done, its record not written
      o.verify?.();
      o.journal.append(r);
    } catch (e) {
      fatalError ??= e;
      fatal.abort(e);
      return;
    }
    if (r.error) summary.failed++;
    else summary.ok++;
    o.onRecord?.(r);
  };

  const lane = async (engine: Engine) => {
    while (!signal.aborted && !lost.has(engine) && next < o.studies.length) {
      const study = o.studies[next++]!;
      started++;
      try {
        const out = await engine.run(study, signal);
        if (signal.aborted && fatalError) return;
        record(out.ok ? successRecord(study, out.result, o.model, o.params, engine.device) : failureRecord(study, out.error, o.model, o.params, engine.device));
      } catch (e) {
        if (e instanceof EngineLost) {
          if (!lost.has(engine)) summary.enginesLost++;
          lost.add(engine);
          record(failureRecord(study, { code: 'INTERNAL', message: e.message }, o.model, o.params, engine.device));
          return;
        }
        if (signal.aborted && isLlavaRadError(e, 'ABORTED')) {
          started--; // not done: a re-run does it
          return;
        }
        fatalError ??= e;
        fatal.abort(e);
        return;
      }
    }
  };

  await Promise.all(o.engines.flatMap((e) => Array.from({ length: e.slots }, () => lane(e))));
  if (fatalError) throw fatalError;
  summary.notAttempted = o.studies.length - started;
  return summary;
}
