// How a WGSL kernel is described to the WebGPU backend: a uniform block of named scalars, a list of storage
// bindings and a body with one `main` entry point. The header (struct, bindings) is generated from the lists,
// so the JavaScript side packs the uniforms by the same names and order and cannot drift from the shader.

export type ScalarType = "u32" | "i32" | "f32";
export type Field = readonly [name: string, type: ScalarType];
/** A storage binding: its name in WGSL, whether the kernel writes it, and the element type. */
export type Binding = readonly [name: string, access: "read" | "read_write", elem: string];

export interface Kernel {
  /** Unique per generated source: the pipeline cache key. */
  readonly key: string;
  readonly code: string;
  readonly params: readonly Field[];
  readonly bindings: readonly Binding[];
}

/** Workgroup size of the one-dimensional kernels. */
export const WG = 64;

/**
 * A kernel whose `main` receives `gid` and `nwg`; `FLAT` in the body is the flat invocation index of a 1-D
 * launch that the backend may have folded into two dimensions (more than 65535 workgroups).
 */
export function kernel(
  key: string,
  params: readonly Field[],
  bindings: readonly Binding[],
  body: string,
  workgroup: string = `${WG}`,
): Kernel {
  const fields = params.length > 0 ? params : ([["unused", "u32"]] as const);
  const header = [
    `struct Params { ${fields.map(([n, t]) => `${n}: ${t}`).join(", ")} }`,
    `@group(0) @binding(0) var<uniform> p: Params;`,
    ...bindings.map(
      ([n, access, elem], i) => `@group(0) @binding(${i + 1}) var<storage, ${access}> ${n}: array<${elem}>;`,
    ),
  ].join("\n");
  const code = `${header}\n${body
    .replace(/FLAT/g, `(gid.x + gid.y * nwg.x * ${WG}u)`)
    .replace(
      "fn main(",
      `@compute @workgroup_size(${workgroup})\nfn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u`,
    )}`;
  return { key, code, params, bindings };
}
