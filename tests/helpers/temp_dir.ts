/**
 * A temporary folder that lives exactly as long as one piece of test code.
 *
 * @example
 * ```ts
 * await withTempDir("xgen_model_", async (dir) => {
 *   await Deno.writeTextFile(`${dir}/model.json`, "{}");
 * }); // the folder is gone here, whether the callback returned or threw
 * ```
 * @module
 */

/** Removes `dir` and all below it; a folder that is already gone is fine. */
async function removeTree(dir: string): Promise<void> {
  try {
    await Deno.remove(dir, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** {@link removeTree}, synchronously. */
function removeTreeSync(dir: string): void {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Makes a fresh temporary folder named `<prefix><random>`, runs `fn` on it and always removes it
 * afterwards; returns what `fn` returns.
 */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await removeTree(dir);
  }
}

/** {@link withTempDir} for synchronous test code. */
export function withTempDirSync<T>(prefix: string, fn: (dir: string) => T): T {
  const dir = Deno.makeTempDirSync({ prefix });
  try {
    return fn(dir);
  } finally {
    removeTreeSync(dir);
  }
}
