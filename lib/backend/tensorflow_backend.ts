/**
 * The kit's `tensorflow` backend: `@tensorflow/tfjs-node-gpu` (or `@tensorflow/tfjs-node`),
 * TensorFlow's C library under tfjs. It is optional and never a dependency of the kit: the
 * packages download libtensorflow in an install script, so it is imported only when asked for,
 * and only if already installed (importing a missing npm package would make Deno fetch it).
 *
 * @example
 * ```ts
 * if (findTensorflowPackage()) await prepareTensorflowBackend();
 * ```
 * @module
 */

/** Packages tried in order. */
export const TENSORFLOW_PACKAGES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const;

/** How to install the backend on a GPU VM (tfjs-node(-gpu) 4.22 bundle libtensorflow 2.9.1). */
export const TENSORFLOW_HELP: string =
  "the 'tensorflow' backend needs @tensorflow/tfjs-node-gpu (or @tensorflow/tfjs-node for CPU) " +
  "with its native binding. On a GPU VM: install the NVIDIA driver, CUDA 11.2 and cuDNN 8.1 " +
  "(what libtensorflow 2.9.1, used by tfjs-node-gpu 4.22.0, was built against), then in the " +
  "project run `deno add npm:@tensorflow/tfjs-node-gpu@4.22.0` and " +
  "`deno install --allow-scripts=npm:@tensorflow/tfjs-node-gpu` (the install script downloads " +
  "libtensorflow from storage.googleapis.com; with npm: `npm install @tensorflow/tfjs-node-gpu@4.22.0`).";

function* ancestors(dir: string): Generator<string> {
  let d = dir.replace(/\/+$/, "");
  while (true) {
    yield d || "/";
    const i = d.lastIndexOf("/");
    if (i <= 0) {
      if (d !== "") yield "/";
      return;
    }
    d = d.slice(0, i);
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first installed tfjs-node package whose native binding file exists, searching
 * `node_modules` upwards from `cwd`; null when none is.
 *
 * @example
 * ```ts
 * findTensorflowPackage(); // "@tensorflow/tfjs-node-gpu" on a prepared GPU VM
 * ```
 */
export function findTensorflowPackage(cwd: string = Deno.cwd()): string | null {
  for (const dir of ancestors(cwd)) {
    for (const pkg of TENSORFLOW_PACKAGES) {
      const root = `${dir}/node_modules/${pkg}`;
      if (!exists(`${root}/package.json`)) continue;
      try {
        for (const e of Deno.readDirSync(`${root}/lib`)) {
          if (
            e.isDirectory && e.name.startsWith("napi-v") &&
            exists(`${root}/lib/${e.name}/tfjs_binding.node`)
          ) return pkg;
        }
      } catch {
        // No lib folder: the install script never ran.
      }
    }
  }
  return null;
}

/**
 * Import the installed tfjs-node package, which registers the `tensorflow` backend; throws a
 * clear error with install instructions when it is missing or its binding fails to load.
 *
 * @example
 * ```ts
 * async function example() {
 *   await prepareTensorflowBackend();
 * }
 * ```
 */
export async function prepareTensorflowBackend(): Promise<string> {
  const pkg = findTensorflowPackage();
  if (!pkg) throw new Error(`backend tensorflow: not installed. ${TENSORFLOW_HELP}`);
  try {
    await import(`npm:${pkg}@4.22.0`);
  } catch (e) {
    throw new Error(
      `backend tensorflow: ${pkg} is installed but failed to load ` +
        `(${e instanceof Error ? e.message : String(e)}). ${TENSORFLOW_HELP}`,
    );
  }
  return pkg;
}
