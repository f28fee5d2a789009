/**
 * An offline Google Cloud Storage emulator for tests: the Cloud Storage emulator class inside
 * `npm:firebase-tools`, which serves the GCS JSON API (upload, download, list, delete, metadata).
 *
 * `firebase emulators:start` cannot be used here: it needs Java and downloads a rules JAR. The
 * `StorageEmulator` class needs neither as long as its security-rules runtime is never started,
 * and the JSON API (`/storage/v1`, `/upload/storage/v1`) never consults rules: it goes through the
 * emulator's admin-only storage layer. So the child process below starts the class with the rules
 * runtime's start/stop replaced by no-ops and an empty rules list.
 *
 * The emulator runs in a child `deno run` of this same file rather than in the test process:
 * firebase-tools loads ~450 npm packages (express, winston...), keeps timers and sockets of its
 * own, and stopping a child by its pid leaves nothing behind in the test's own op and resource
 * sanitizers. No Deno flags beyond the child's permissions and no npm lifecycle scripts are
 * needed: the scripts Deno skips when installing firebase-tools (`re2`'s native build,
 * `protobufjs`'s postinstall notice) belong to parts the storage emulator never loads.
 *
 * @example
 * ```ts
 * const emu = await startGcsEmulator();
 * const store = new GcsStore("gs://test-bucket/run", { apiEndpoint: emu.endpoint });
 * await emu.stop();
 * ```
 * @module
 */

/** A running emulator. */
export interface GcsEmulator {
  /** Base URL of the JSON API, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** Milliseconds from spawn to the first successful request. */
  startMs: number;
  /** Kill the child and remove its blob folder. */
  stop(): Promise<void>;
}

/** Options for {@link startGcsEmulator}. */
export interface StartGcsEmulatorOptions {
  /** Give up after this long (default 60 s; the first start may also compile the module graph). */
  timeoutMs?: number;
  /** Project id the emulator reports (default "xgen-kit-test"). */
  projectId?: string;
}

const READY = "GCS_EMULATOR_READY ";
const TAIL_CHARS = 4000;

/**
 * Start the emulator on 127.0.0.1 on a free port, in a child process with its own TMPDIR (where
 * the emulator keeps its blobs).
 *
 * @example
 * ```ts
 * const { endpoint, stop } = await startGcsEmulator();
 * Deno.env.set("STORAGE_EMULATOR_HOST", endpoint);
 * await stop();
 * ```
 */
export async function startGcsEmulator(opts: StartGcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  // A free port is picked in the child just before it listens; another process can grab it in
  // between, and the child then exits early, so a few attempts are made.
  let last = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    const res = await spawnOnce(opts.projectId ?? "xgen-kit-test", timeoutMs);
    if ("endpoint" in res) return res;
    last = res.error;
  }
  throw new Error(`startGcsEmulator: the emulator did not start:\n${last}`);
}

async function spawnOnce(
  projectId: string,
  timeoutMs: number,
): Promise<GcsEmulator | { error: string }> {
  const t0 = performance.now();
  const tmp = await Deno.makeTempDir({ prefix: "gcs-emulator-" });
  const config = new URL("../../deno.json", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      config,
      // firebase-tools reads the environment, its own package files and os info at load time,
      // and writes blobs under TMPDIR; granting all is simpler than tracking its module graph.
      "--allow-all",
      new URL(import.meta.url).pathname,
      projectId,
    ],
    env: { TMPDIR: tmp, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  // Both pipes are drained for the child's whole life (a full pipe would block it); the tail is
  // kept for error messages.
  let tail = "";
  let endpoint = "";
  let onReady: (ep: string) => void = () => {};
  const ready = new Promise<string>((res) => (onReady = res));
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    let pending = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      tail = (tail + text).slice(-TAIL_CHARS);
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith(READY)) onReady(line.slice(READY.length).trim());
      }
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    ready.then((ep) => ({ ep })),
    child.status.then((s) => ({ exited: s.code })),
    new Promise<{ timeout: true }>((
      res,
    ) => (timer = setTimeout(() => res({ timeout: true }), timeoutMs))),
  ]);
  clearTimeout(timer);

  const stop = async () => {
    const kill = (sig: Deno.Signal) => {
      try {
        child.kill(sig);
      } catch {
        // already exited
      }
    };
    kill("SIGTERM");
    // The child shuts the emulator down on SIGTERM; a child stuck at that gets SIGKILL.
    const hard = setTimeout(() => kill("SIGKILL"), 5000);
    await child.status;
    clearTimeout(hard);
    await drained;
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  };
  if ("ep" in outcome) {
    endpoint = outcome.ep;
    return { endpoint, startMs: performance.now() - t0, stop };
  }
  await stop();
  const why = "exited" in outcome
    ? `child exited with code ${outcome.exited}`
    : `no answer after ${timeoutMs} ms`;
  return { error: `${why}; its output ended with:\n${tail}` };
}

/** Minimal shape of firebase-tools' StorageEmulator (the package ships no type declarations). */
interface StorageEmulatorLike {
  _rulesRuntime: { start(...a: unknown[]): Promise<void>; stop(): Promise<void> };
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Child process: start the emulator, print the ready line, run until killed. */
async function serve(projectId: string): Promise<void> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const mod = await import("firebase-tools/lib/emulator/storage/index.js");
  const { StorageEmulator } = (mod.default ?? mod) as {
    StorageEmulator: new (args: Record<string, unknown>) => StorageEmulatorLike;
  };
  const emu = new StorageEmulator({ projectId, host: "127.0.0.1", port, rules: [] });
  // The rules runtime would download and run a Java JAR; the JSON API never uses it.
  emu._rulesRuntime.start = () => Promise.resolve();
  emu._rulesRuntime.stop = () => Promise.resolve();
  // Registering the instance is what lets the emulator build object URLs (it asks the registry
  // for its own host and port); `start` also waits for the port to accept connections.
  const reg = await import("firebase-tools/lib/emulator/registry.js");
  const { EmulatorRegistry } = (reg.default ?? reg) as {
    EmulatorRegistry: { start(e: StorageEmulatorLike): Promise<void> };
  };
  await EmulatorRegistry.start(emu);
  const endpoint = `http://127.0.0.1:${port}`;
  // `start` returns before the socket is listening: wait until an object listing answers.
  for (let i = 0;; i++) {
    try {
      const r = await fetch(`${endpoint}/storage/v1/b/probe/o`);
      await r.body?.cancel();
      if (r.ok) break;
      throw new Error(`probe answered HTTP ${r.status}`);
    } catch (e) {
      if (i >= 400) throw e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  console.log(READY + endpoint);
  const bye = () => {
    emu.stop().finally(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGTERM", bye);
  Deno.addSignalListener("SIGINT", bye);
}

if (import.meta.main) await serve(Deno.args[0] ?? "xgen-kit-test");
