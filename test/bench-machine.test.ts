// bench/machine.mjs names the machine a benchmark ran on: cloud VMs hide the model name ("AMD EPYC" on Zen 4
// and Zen 5 alike), so the records carry cpuid's family and model and the slug adds the microarchitecture.
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain ES module without types
import { parseCpuInfo, slugFor } from '../bench/machine.mjs';

const cpuinfo = (vendor: string, family: number | null, model: number | null, name: string, flags: string) =>
  [
    'processor\t: 0',
    `vendor_id\t: ${vendor}`,
    family === null ? '' : `cpu family\t: ${family}`,
    model === null ? '' : `model\t\t: ${model}`,
    `model name\t: ${name}`,
    'stepping\t: 1',
    `flags\t\t: ${flags}`,
    '',
    'processor\t: 1',
    `vendor_id\t: ${vendor}`,
  ].join('\n');

describe('bench machine identification', () => {
  it('tells Zen 4 from Zen 5 behind the same "AMD EPYC" name', () => {
    const zen4 = parseCpuInfo(cpuinfo('AuthenticAMD', 25, 17, 'AMD EPYC', 'fpu avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16'));
    const zen5 = parseCpuInfo(cpuinfo('AuthenticAMD', 26, 2, 'AMD EPYC', 'fpu avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni avx512_vp2intersect'));
    expect(zen4).toMatchObject({ vendor: 'AuthenticAMD', family: 25, model: 17, stepping: 1, microarch: 'zen4' });
    expect(zen5).toMatchObject({ family: 26, model: 2, microarch: 'zen5' });
    expect(zen5.flags).toEqual(['avx2', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx_vnni']);
    expect(slugFor('AMD EPYC', zen4, 2)).toBe('amd-epyc-zen4-2c');
    expect(slugFor('AMD EPYC', zen5, 2)).toBe('amd-epyc-zen5-2c');
  });

  it('names Sapphire Rapids and its AMX flags, and keeps a telling model name as it is', () => {
    const spr = parseCpuInfo(cpuinfo('GenuineIntel', 6, 143, 'Intel(R) Xeon(R) Platinum 8480+', 'avx2 avx512f avx512_fp16 amx_tile amx_int8 amx_bf16'));
    expect(spr).toMatchObject({ family: 6, model: 143, microarch: 'sapphire-rapids' });
    expect(spr.flags).toEqual(['avx2', 'avx512f', 'avx512_fp16', 'amx_tile', 'amx_int8']);
    expect(slugFor('Intel(R) Xeon(R) Platinum 8480+', spr, 4)).toBe('intel-xeon-platinum-8480-4c');
  });

  it('guesses nothing for a generation it does not know, nor on arm64', () => {
    const unknown = parseCpuInfo(cpuinfo('AuthenticAMD', 23, 49, 'AMD EPYC', 'avx2'));
    expect(unknown.microarch).toBeNull();
    expect(slugFor('AMD EPYC', unknown, 2)).toBe('amd-epyc-2c');
    const arm = parseCpuInfo('processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd asimddp i8mm sve\nCPU implementer\t: 0x41\n');
    expect(arm).toMatchObject({ vendor: null, family: null, model: null, microarch: null, flags: ['asimddp', 'i8mm', 'sve'] });
  });
});
