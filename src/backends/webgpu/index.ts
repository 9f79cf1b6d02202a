// The WebGPU backend (WGSL kernels; Node through the `webgpu` package, browsers through navigator.gpu).
export {
  WebGPUBackend,
  createWebGPUBackend,
  segmentsOf,
  type GemmPath,
  type WebGPUOptions,
} from "./backend.js";
export { acquireDevice, type GpuDevice } from "./gpu.js";
