/**
 * Headless Chromium for the tests that check rendered HTML (Plotly figures, the study report):
 * find the browser on PATH and dump a page's DOM after its scripts ran, with the flags that keep
 * it offline and quiet (no network, no first-run, a throwaway profile).
 *
 * @example
 * ```ts
 * const chromium = findChromium(); // null when not installed: skip the test
 * const { dom } = await dumpDom(chromium!, "/tmp/x/report.html", { profileDir: "/tmp/x/profile" });
 * ```
 * @module
 */

/** The Chromium (or Chrome) binary on PATH, or null. */
export function findChromium(): string | null {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  return null;
}

/** Options of {@link dumpDom}. */
export interface DumpDomOptions {
  /** A throwaway profile folder (inside the test's temp folder). */
  profileDir: string;
  /** Virtual time the page's scripts get before the dump, in ms (default 10000). */
  budgetMs?: number;
}

/** Open `htmlPath` headless, let its scripts run, and return the DOM, exit code and stderr. */
export async function dumpDom(
  chromium: string,
  htmlPath: string,
  o: DumpDomOptions,
): Promise<{ dom: string; code: number; stderr: string }> {
  const out = await new Deno.Command(chromium, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${o.profileDir}`,
      `--virtual-time-budget=${o.budgetMs ?? 10000}`,
      "--dump-dom",
      `file://${htmlPath}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { dom: dec.decode(out.stdout), code: out.code, stderr: dec.decode(out.stderr) };
}
