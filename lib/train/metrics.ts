/**
 * Training metrics as JSON lines (`metrics.jsonl`): one object per logged step. Appends are single
 * writes of whole lines, so a kill leaves at most one truncated last line, which readers skip. On
 * resume, entries after the checkpoint's step are dropped so the log matches the restored state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsLog, readMetrics, truncateMetrics } from "./metrics.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/metrics.jsonl`; // e.g. runs/x/metrics.jsonl
 * const log = new MetricsLog(path);
 * for (const step of [100, 200]) await log.append({ step, loss: 0.5, lr: 1e-4, grad_norm: 1.2 });
 * assert.equal((await readMetrics(path)).length, 2);
 * await truncateMetrics(path, 100); // keep steps <= 100, as after resuming from step 100
 * assert.deepEqual((await readMetrics(path)).map((r) => r.step), [100]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { writeTextAtomic } from "../util/atomic.ts";

/** One logged step. `step` is required; the rest are free-form numbers or strings. */
export interface MetricRecord {
  step: number;
  loss?: number;
  lr?: number;
  grad_norm?: number;
  images_per_s?: number;
  elapsed_s?: number;
  [key: string]: number | string | boolean | null | undefined;
}

/**
 * Appends records to a JSON-lines file.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * await new MetricsLog(`${dir}/m.jsonl`).append({ step: 1, loss: 0.3 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class MetricsLog {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** Append one record as a line (one write call, so lines never interleave partially). */
  async append(rec: MetricRecord): Promise<void> {
    if (!Number.isInteger(rec.step)) {
      throw new Error(`${this.path}: metric record needs an integer "step", got ${rec.step}`);
    }
    await Deno.writeTextFile(this.path, JSON.stringify(rec) + "\n", { append: true, create: true });
  }
}

/**
 * Parse JSON-lines text. A final line that is not newline-terminated and does not parse (a write cut
 * by a kill) is skipped; any other bad line is an error naming `source` and the line number.
 *
 * @example
 * ```ts
 * parseMetrics('{"step":1}\n{"st', "m.jsonl"); // [{ step: 1 }]
 * ```
 */
export function parseMetrics(text: string, source = "metrics"): MetricRecord[] {
  const lines = text.split("\n");
  const endsClean = text.endsWith("\n") || text === "";
  const out: MetricRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const isLast = i === lines.length - 1;
    let rec: MetricRecord;
    try {
      rec = JSON.parse(line);
    } catch {
      if (isLast && !endsClean) break; // truncated final write
      throw new Error(`${source}:${i + 1}: not a JSON object line`);
    }
    if (!rec || typeof rec !== "object" || !Number.isInteger(rec.step)) {
      throw new Error(`${source}:${i + 1}: expected an object with an integer "step"`);
    }
    out.push(rec);
  }
  return out;
}

/**
 * Read `metrics.jsonl`; a missing file gives an empty list.
 *
 * @example
 * ```ts
 * const rows = await readMetrics("runs/x/metrics.jsonl");
 * ```
 */
export async function readMetrics(path: string): Promise<MetricRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return parseMetrics(text, path);
}

/**
 * Keep only records with `step <= lastStep` (and drop a truncated last line), rewriting the file
 * atomically. Returns the number of records kept. A missing file is left missing.
 *
 * @example
 * ```ts
 * await truncateMetrics("runs/x/metrics.jsonl", 300);
 * ```
 */
export async function truncateMetrics(path: string, lastStep: number): Promise<number> {
  const rows = await readMetrics(path);
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  const kept = rows.filter((r) => r.step <= lastStep);
  await writeTextAtomic(path, kept.map((r) => JSON.stringify(r) + "\n").join(""));
  return kept.length;
}
