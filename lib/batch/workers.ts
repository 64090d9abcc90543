// Worker processes: one engine per device, each a child `llava-rad batch --ipc-worker` with
// CUDA_VISIBLE_DEVICES set for its GPU. The parent owns the manifest, the output file and the order of
// work; workers only turn studies into outcomes. Messages (JSON over the IPC channel):
//   parent -> worker: {t:'init', load, slots, settings} {t:'study', key, study} {t:'abort', key} {t:'stop'}
//   worker -> parent: {t:'ready'} {t:'fatal', error} {t:'done', key, outcome} {t:'aborted', key}
// A worker ignores SIGINT/SIGTERM (the parent, which gets them too, stops it) and exits when the parent
// disconnects, so a SIGKILL'd parent leaves no orphans.

import { fork, type ChildProcess } from 'node:child_process';
import { LlavaRadError } from '../errors.js';
import type { LoadLlavaRadOptions } from '../llava-rad.js';
import type { DeviceSpec } from './devices.js';
import { EngineLost, openLocalEngine, toStudyError, type Engine, type Outcome, type StudySettings } from './engine.js';
import type { Study } from './manifest.js';
import type { StudyError } from './record.js';

type ToWorker =
  | { t: 'init'; load: LoadLlavaRadOptions; slots: number; settings: StudySettings; device: string }
  | { t: 'study'; key: number; study: Study }
  | { t: 'abort'; key: number }
  | { t: 'stop' };
type FromWorker =
  | { t: 'ready' }
  | { t: 'fatal'; error: StudyError }
  | { t: 'done'; key: number; outcome: Outcome }
  | { t: 'aborted'; key: number };

interface Pending {
  resolve: (o: Outcome) => void;
  reject: (e: Error) => void;
}

class WorkerEngine implements Engine {
  #child: ChildProcess;
  #pending = new Map<number, Pending>();
  #next = 0;
  #gone: string | null = null;
  #exited: Promise<void>;

  constructor(readonly device: string, readonly slots: number, child: ChildProcess) {
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, sig) => {
        this.#gone = `the worker process for ${device} exited (${sig ? `signal ${sig}` : `code ${code}`})`;
        for (const p of this.#pending.values()) p.reject(new EngineLost(`${this.#gone} while the study was in flight`));
        this.#pending.clear();
        resolve();
      });
    });
    child.on('message', (m: FromWorker) => {
      if (m.t !== 'done' && m.t !== 'aborted') return;
      const p = this.#pending.get(m.key);
      if (!p) return;
      this.#pending.delete(m.key);
      if (m.t === 'done') p.resolve(m.outcome);
      else p.reject(new LlavaRadError('ABORTED', 'the study was aborted'));
    });
  }

  run(study: Study, signal: AbortSignal): Promise<Outcome> {
    if (this.#gone) return Promise.reject(new EngineLost(this.#gone));
    if (signal.aborted) return Promise.reject(new LlavaRadError('ABORTED', 'the study was aborted'));
    const key = this.#next++;
    return new Promise<Outcome>((resolve, reject) => {
      const onAbort = () => send(this.#child, { t: 'abort', key });
      signal.addEventListener('abort', onAbort, { once: true });
      const done = () => signal.removeEventListener('abort', onAbort);
      this.#pending.set(key, { resolve: (o) => (done(), resolve(o)), reject: (e) => (done(), reject(e)) });
      send(this.#child, { t: 'study', key, study });
    });
  }

  async close(): Promise<void> {
    if (!this.#gone) {
      send(this.#child, { t: 'stop' });
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 30_000);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

function send(to: ChildProcess | NodeJS.Process, m: ToWorker | FromWorker): void {
  // a closed channel is reported by 'exit' / 'disconnect'; the callback keeps send errors from throwing
  if (to.connected && to.send) to.send(m, undefined, undefined, () => {});
}

export interface WorkerOptions {
  /** the CLI script the workers run (dist/cli.js) */
  script: string;
  device: DeviceSpec;
  load: LoadLlavaRadOptions;
  slots: number;
  settings: StudySettings;
}

/** Forks a worker for one device and waits until its engine is loaded. */
export function spawnWorkerEngine(o: WorkerOptions): Promise<Engine> {
  const env = { ...process.env };
  if (o.device.visible !== undefined) env.CUDA_VISIBLE_DEVICES = o.device.visible;
  const child = fork(o.script, ['batch', '--ipc-worker'], { env, execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const load: LoadLlavaRadOptions = { ...o.load, backend: o.device.backend };
  return new Promise<Engine>((resolve, reject) => {
    const onExit = (code: number | null, sig: string | null) =>
      reject(new LlavaRadError('BACKEND', `the worker process for ${o.device.name} exited while loading the model (${sig ? `signal ${sig}` : `code ${code}`})`));
    const onMessage = (m: FromWorker) => {
      if (m.t !== 'ready' && m.t !== 'fatal') return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (m.t === 'ready') return resolve(new WorkerEngine(o.device.name, o.slots, child));
      child.kill('SIGKILL');
      reject(new LlavaRadError(m.error.code as LlavaRadError['code'], `${o.device.name}: ${m.error.message}`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    send(child, { t: 'init', load, slots: o.slots, settings: o.settings, device: o.device.name });
  });
}

/** The worker side: serves studies for the parent until it says stop or disconnects. Resolves with 0. */
export function runWorker(): Promise<number> {
  const noop = () => {};
  process.on('SIGINT', noop);
  process.on('SIGTERM', noop);
  return new Promise<number>((resolve) => {
    let engine: Engine | null = null;
    let loading: Promise<unknown> = Promise.resolve();
    const inFlight = new Map<number, AbortController>();
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      for (const ac of inFlight.values()) ac.abort();
      void loading
        .then(() => engine?.close())
        .catch(noop)
        .finally(() => {
          if (process.connected) process.disconnect();
          resolve(0);
        });
    };
    process.on('disconnect', stop);
    process.on('message', (m: ToWorker) => {
      if (m.t === 'init') {
        loading = openLocalEngine(m.load, m.slots, m.settings, m.device).then(
          (e) => {
            engine = e;
            send(process, { t: 'ready' });
          },
          (e: unknown) => send(process, { t: 'fatal', error: toStudyError(e) }),
        );
      } else if (m.t === 'study') {
        const ac = new AbortController();
        inFlight.set(m.key, ac);
        const key = m.key;
        void (async () => {
          try {
            if (!engine) throw new LlavaRadError('INTERNAL', 'a study came before the engine was ready');
            const outcome = await engine.run(m.study, ac.signal);
            send(process, { t: 'done', key, outcome });
          } catch (e) {
            if (ac.signal.aborted) send(process, { t: 'aborted', key });
            else send(process, { t: 'done', key, outcome: { ok: false, error: toStudyError(e) } });
          } finally {
            inFlight.delete(key);
          }
        })();
      } else if (m.t === 'abort') {
        inFlight.get(m.key)?.abort();
      } else if (m.t === 'stop') {
        stop();
      }
    });
  });
}
