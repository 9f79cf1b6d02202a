/// <reference types="@webgpu/types" />
// Finding a WebGPU device: `navigator.gpu` in a browser (or a runtime that has it), else the `webgpu` npm
// package (Dawn) in Node. Nothing here is imported statically from Node, so the module also loads in a page.

export interface GpuDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  /** "vendor architecture (description)" as the adapter reports it. */
  adapterName: string;
  /** A CPU implementation (SwiftShader, lavapipe, WARP): run the kernels that suit CPUs. */
  software: boolean;
}

/** Vulkan ICD manifests of software rasterisers a Debian machine may have (Chromium's SwiftShader, lavapipe). */
export const SOFTWARE_ICDS = [
  "/usr/lib/chromium/vk_swiftshader_icd.json",
  "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
  "/usr/share/vulkan/icd.d/lvp_icd.aarch64.json",
];

interface NodeEnv {
  process?: { env: Record<string, string | undefined>; versions?: { node?: string } };
}

/**
 * Dawn instances created here. They must outlive their devices: an instance collected while a device lives
 * crashes the process when it exits.
 */
const instances: GPU[] = [];

async function nodeGpu(): Promise<GPU> {
  // A variable specifier keeps bundlers and the type checker from requiring the optional package.
  const spec = "webgpu";
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = (await import(spec)) as typeof mod;
  } catch (e) {
    throw new Error(
      `the optional 'webgpu' package is not installed (${(e as Error).message.split("\n")[0]})`,
    );
  }
  // Dawn's objects check `instanceof` against these classes; the WebGPU globals a page would have.
  for (const [k, v] of Object.entries(mod.globals))
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const gpu = mod.create([]);
  instances.push(gpu);
  return gpu;
}

async function firstExisting(paths: string[]): Promise<string | null> {
  const spec = "node:fs";
  const fs = (await import(spec)) as { existsSync(p: string): boolean };
  return paths.find((p) => fs.existsSync(p)) ?? null;
}

async function requestAdapter(): Promise<GPUAdapter> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    const a = await nav.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!a) throw new Error("navigator.gpu found no adapter");
    return a;
  }
  const proc = (globalThis as NodeEnv).process;
  if (!proc?.versions?.node) throw new Error("no navigator.gpu in this runtime");
  const a = await (await nodeGpu()).requestAdapter({ powerPreference: "high-performance" });
  if (a) return a;
  // No Vulkan device: fall back to a software Vulkan driver when one is installed, as on GPU-less CI machines.
  // The Vulkan loader reads VK_ICD_FILENAMES when an instance is created, so a fresh instance sees it.
  if (!proc.env.VK_ICD_FILENAMES) {
    const icd = await firstExisting(SOFTWARE_ICDS);
    if (icd) {
      proc.env.VK_ICD_FILENAMES = icd;
      const b = await (await nodeGpu()).requestAdapter();
      if (b) return b;
    }
  }
  throw new Error(
    "Dawn found no GPU adapter. Without a GPU, install a software Vulkan driver: " +
      "`apt-get install chromium libvulkan1` and set VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json",
  );
}

export async function acquireDevice(): Promise<GpuDevice> {
  const adapter = await requestAdapter();
  const lim = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
      maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
    },
  });
  const info = adapter.info;
  const desc = [info.vendor, info.architecture].filter((s) => s).join(" ");
  const adapterName = `${desc || "unknown adapter"}${info.description ? ` (${info.description})` : ""}`;
  const software =
    info.isFallbackAdapter === true ||
    /swiftshader|llvmpipe|lavapipe|warp|microsoft basic/i.test(
      `${info.vendor} ${info.architecture} ${info.device} ${info.description}`,
    );
  return { adapter, device, adapterName, software };
}
