/**
 * Displays that update in place in a Jupyter notebook run by Deno's kernel: what
 * {@link Progress} uses instead of printing a line every few seconds.
 *
 * @example
 * ```ts
 * import { kernelDisplay } from "./jupyter_display.ts";
 *
 * const show = kernelDisplay(); // null outside a Jupyter kernel
 * if (show) {
 *   await show({ "text/plain": "step 1/10" }, { display_id: "p", update: false });
 *   await show({ "text/plain": "step 2/10" }, { display_id: "p", update: true });
 * }
 * ```
 * @module
 */

/** A MIME bundle (`"text/plain"`, `"text/html"`, ...) for one display. */
export type DisplayBundle = Record<string, string>;

/**
 * Shows `bundle` as display `display_id`: a new output when `update` is false, a replacement of
 * that output's content when true (Jupyter's `update_display_data`).
 */
export type DisplayFn = (
  bundle: DisplayBundle,
  opts: { display_id: string; update: boolean },
) => unknown;

/**
 * The kernel's display function when this code runs inside `deno jupyter` (a notebook), else
 * null. Outside the kernel even reading `Deno.jupyter` throws ("only available in `deno jupyter`
 * subcommand"), so the probe is a guarded property read, not a `typeof` check.
 */
export function kernelDisplay(): DisplayFn | null {
  let jupyter: { display?: unknown } | undefined;
  try {
    jupyter = (Deno as unknown as { jupyter?: { display?: unknown } }).jupyter;
  } catch {
    return null;
  }
  if (typeof jupyter?.display !== "function") return null;
  const display = jupyter.display as (obj: unknown, o: Record<string, unknown>) => Promise<void>;
  return (bundle, o) => display(bundle, { raw: true, display_id: o.display_id, update: o.update });
}
