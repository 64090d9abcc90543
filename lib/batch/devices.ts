// --device D / --devices LIST: where engines run. "cpu", "cuda" (the first visible GPU), "cuda:N" (GPU N:
// its worker process gets CUDA_VISIBLE_DEVICES=N), "auto" (CUDA when built in and present, else CPU).
// One engine per listed device; more than one device, or a cuda:N, means one worker process per device.

import type { Backend } from '../options.js';

export interface DeviceSpec {
  /** as given, e.g. "cuda:1" */
  name: string;
  backend: Backend;
  /** CUDA_VISIBLE_DEVICES for a worker process ('' hides every GPU); undefined: inherit */
  visible: string | undefined;
}

export class DeviceSpecError extends Error {}

export function parseDevice(s: string): DeviceSpec {
  const name = s.trim();
  if (name === 'cpu') return { name, backend: 'cpu', visible: '' };
  if (name === 'cuda' || name === 'auto') return { name, backend: name, visible: undefined };
  const m = /^cuda:(\d{1,3})$/.exec(name);
  if (m) return { name, backend: 'cuda', visible: String(Number(m[1])) };
  throw new DeviceSpecError(`a device must be cpu, cuda, cuda:N or auto, got '${s}'`);
}

export function parseDevices(list: string): DeviceSpec[] {
  const parts = list.split(',');
  if (parts.some((p) => p.trim() === '')) throw new DeviceSpecError(`--devices must be a comma-separated list such as cuda:0,cuda:1, got '${list}'`);
  const specs = parts.map(parseDevice);
  const gpus = specs.filter((d) => d.visible !== undefined && d.visible !== '').map((d) => d.visible);
  const dup = gpus.find((g, i) => gpus.indexOf(g) !== i);
  if (dup !== undefined) throw new DeviceSpecError(`--devices names cuda:${dup} twice (one engine per GPU), got '${list}'`);
  return specs;
}

/** in this process (one device, not a numbered GPU) or one worker process per device */
export function needsWorkers(devices: DeviceSpec[]): boolean {
  return devices.length > 1 || devices.some((d) => d.backend === 'cuda' && d.visible !== undefined);
}
