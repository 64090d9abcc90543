// One starter of test/batch-lock.test.ts's race (run with scripts/ts-hooks.mjs):
//   node --import scripts/ts-hooks.mjs test/helpers/lock-racer.mjs LOCK_MODULE OUT
// Loads LOCK_MODULE (lib/batch/lock.ts) and says "READY". Then, for each round, reads commands on stdin:
//   "go SHARED": calls acquireLock(OUT) and says "WON" (after appending its pid to SHARED, as a writer of
//                OUT would write) or "LOST <code> <message>";
//   "end":       releases the lock if it won, and says "DONE".
// It exits when stdin ends.
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const [mod, out] = process.argv.slice(2);
const { acquireLock } = await import(pathToFileURL(mod).href);
let release = null;
const say = (s) => process.stdout.write(`${s.replace(/\n/g, ' ')}\n`);
createInterface({ input: process.stdin }).on('line', async (l) => {
  if (l.startsWith('go ')) {
    try {
      release = await acquireLock(out);
      appendFileSync(l.slice(3), `${process.pid}\n`);
      say('WON');
    } catch (e) {
      say(`LOST ${e?.code ?? 'NO_CODE'} ${e?.message ?? String(e)}`);
    }
  } else if (l === 'end') {
    release?.();
    release = null;
    say('DONE');
  }
});
say('READY');
