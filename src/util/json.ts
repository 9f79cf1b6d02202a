// Small helpers for parsed JSON.

/** A plain object (not null, not an array): the shape of a JSON config section. */
export function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
