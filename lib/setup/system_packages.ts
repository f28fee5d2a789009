/**
 * The one list of Debian packages the kit uses, each with its reason and the group that needs it.
 * `tests/setup/ensure_deps.sh` installs every group for the test suite; the commands that train
 * or sample on the BLAS CPU backend install only {@link FAST_PATH_GROUPS} (see `fast_path.ts`).
 *
 * @example
 * ```ts
 * import { packagesIn } from "./system_packages.ts";
 * packagesIn(["blas", "cc"]); // ["libopenblas0-pthread", "gcc", "libc6-dev"]
 * ```
 * @module
 */

/**
 * What a package is for. `blas` and `cc` make the default CPU backend's fast path
 * ({@link FAST_PATH_GROUPS}); the others serve the tests (and `--procs`, `--backend webgpu`).
 */
export type PackageGroup = "blas" | "cc" | "webgpu" | "browser" | "notebooks" | "mpi";

/** One Debian package the kit uses. */
export interface SystemPackage {
  /** Debian package name. */
  name: string;
  /** What needs it. */
  group: PackageGroup;
  /** Why, in a few words. */
  why: string;
}

/** Every package, in install order; the fast path's first. */
export const SYSTEM_PACKAGES: readonly SystemPackage[] = [
  { name: "libopenblas0-pthread", group: "blas", why: "cblas_sgemm through Deno FFI" },
  { name: "gcc", group: "cc", why: "compiles lib/backend/native/xgen_kernels.c once" },
  { name: "libc6-dev", group: "cc", why: "the C headers (math.h, string.h) that compile needs" },
  { name: "mesa-vulkan-drivers", group: "webgpu", why: "lavapipe software Vulkan" },
  { name: "libvulkan1", group: "webgpu", why: "Vulkan loader" },
  { name: "chromium", group: "browser", why: "headless checks of Plotly/HTML reports" },
  { name: "python3-nbclient", group: "notebooks", why: "executes the notebooks in tests" },
  { name: "jupyter-nbconvert", group: "notebooks", why: "nbformat and HTML export" },
  { name: "jupyter-client", group: "notebooks", why: "kernel launching and messaging" },
  { name: "python3-ipykernel", group: "notebooks", why: "nbclient's kernel-manager defaults" },
  { name: "python3-zmq", group: "notebooks", why: "ZeroMQ transport of Jupyter messages" },
  { name: "openmpi-bin", group: "mpi", why: "mpirun starts data-parallel ranks" },
  { name: "libopenmpi-dev", group: "mpi", why: "libmpi.so.40 loaded through Deno FFI" },
];

/** What the CPU fast path needs: OpenBLAS, and a C compiler for the kit's kernels. */
export const FAST_PATH_GROUPS: readonly PackageGroup[] = ["blas", "cc"];

/** Every group, for the test suite. */
export const ALL_GROUPS: readonly PackageGroup[] = [
  "blas",
  "cc",
  "webgpu",
  "browser",
  "notebooks",
  "mpi",
];

/**
 * Names of the packages in `groups`, in {@link SYSTEM_PACKAGES} order.
 *
 * @example
 * ```ts
 * packagesIn(ALL_GROUPS).length; // 13
 * ```
 */
export function packagesIn(groups: readonly PackageGroup[]): string[] {
  return SYSTEM_PACKAGES.filter((p) => groups.includes(p.group)).map((p) => p.name);
}
