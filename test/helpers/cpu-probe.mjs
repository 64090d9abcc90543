// One decoder run in a process of its own, for the CPU matrix (test/cpu-matrix.test.ts): the environment
// picks the CPU code (LLAVA_RAD_CPU_VARIANT, LLAVA_RAD_CPU_KERNELS), and the process may run under
// qemu-user as another CPU. Plain JavaScript on the built package (dist/), so it needs no TypeScript loader.
//
//   node test/helpers/cpu-probe.mjs '{"model": "m.gguf", "prompt": "...", "maxTokens": 24, "forced": [ids]}'
//
// Prints one JSON line: the CPU code in use, the model's VNNI matrix count, the greedy continuation of the
// prompt (BOS first), and the teacher-forcing gaps along `forced` (a reference's greedy tokens): at step i,
// our largest logit minus our logit of forced[i], after the prompt and forced[0..i-1].
import { cpuInfo, loadModel } from '../../dist/index.js';

const a = JSON.parse(process.argv[2]);
const model = await loadModel({ model: a.model, threads: a.threads ?? 1, contextSize: 256 });
try {
  const greedy = await model.generate(a.prompt, { maxTokens: a.maxTokens });
  const context = [...greedy.promptTokens];
  const gaps = [];
  for (const t of a.forced ?? []) {
    const logits = await model.evaluate([{ tokens: context }], { addBos: false });
    let max = -Infinity;
    for (const v of logits) if (v > max) max = v;
    gaps.push(max - logits[t]);
    context.push(t);
  }
  process.stdout.write(JSON.stringify({
    cpu: cpuInfo(),
    vnniMatrices: model.info.vnniMatrices,
    promptTokens: greedy.promptTokens,
    tokens: greedy.tokens,
    gaps,
  }) + '\n');
} finally {
  await model.dispose();
}
