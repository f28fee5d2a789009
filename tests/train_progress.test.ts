import assert from "node:assert/strict";
import {
  formatDuration,
  formatEta,
  formatNumber,
  formatProgressLine,
  formatRate,
  Progress,
} from "../lib/util/progress.ts";
import { kernelDisplay } from "../lib/util/jupyter_display.ts";

Deno.test("duration, ETA, rate and number formatting", () => {
  assert.equal(formatDuration(0), "0.0s");
  assert.equal(formatDuration(9.94), "9.9s");
  assert.equal(formatDuration(42.7), "42s");
  assert.equal(formatDuration(65), "1m05s");
  assert.equal(formatDuration(3723), "1h02m03s");
  assert.equal(formatDuration(2 * 86400 + 3 * 3600 + 59), "2d03h");
  assert.equal(formatDuration(Infinity), "?");
  assert.equal(formatEta(300, 2), "2m30s");
  assert.equal(formatEta(10, 0), "?");
  assert.equal(formatEta(0, 0), "0s");
  assert.equal(formatRate(3.2), "3.20 it/s");
  assert.equal(formatRate(250.4), "250 it/s");
  assert.equal(formatRate(0.05), "20.0 s/it");
  assert.equal(formatRate(NaN), "? it/s");
  assert.equal(formatNumber(0.123456), "0.1235");
  assert.equal(formatNumber(0.000123), "1.23e-4");
  assert.equal(formatNumber(0.0001), "1e-4");
  assert.equal(formatNumber(123456.7), "1.23e5");
  assert.equal(formatNumber(42), "42");
});

Deno.test("formatProgressLine is exact", () => {
  assert.equal(
    formatProgressLine({
      label: "train",
      done: 25,
      total: 100,
      rate: 5,
      elapsedS: 5,
      width: 8,
      fields: { loss: 0.5, lr: 0.0002, phase: "warm" },
    }),
    "train 25/100 25% |##      | 5.00 it/s ETA 15s elapsed 5.0s loss=0.5000 lr=2e-4 phase=warm",
  );
});

function fakeStream(tty: boolean) {
  const chunks: string[] = [];
  return {
    chunks,
    stream: {
      writeSync(p: Uint8Array) {
        chunks.push(new TextDecoder().decode(p));
        return p.length;
      },
      isTerminal: () => tty,
    },
  };
}

Deno.test("non-TTY prints a plain line at most every `every` ms; rate excludes initial", () => {
  let t = 0;
  const { chunks, stream } = fakeStream(false);
  const bar = new Progress({
    total: 100,
    label: "x",
    stream,
    every: 1000,
    now: () => t,
    width: 0,
    initial: 50,
  });
  t = 500;
  bar.update(55, { loss: 1 }); // first update always prints
  t = 900;
  bar.update(60); // throttled
  t = 1600;
  bar.update(70);
  bar.done({ loss: 0.25 });
  assert.equal(chunks.length, 3);
  assert.ok(chunks.every((c) => c.endsWith("\n") && !c.includes("\r")));
  // 5 items in 0.5 s = 10 it/s; 45 left -> 4.5 s.
  assert.equal(chunks[0], "x 55/100 55% 10.00 it/s ETA 4.5s elapsed 0.5s loss=1\n");
  assert.equal(chunks[1], "x 70/100 70% 12.50 it/s ETA 2.4s elapsed 1.6s loss=1\n");
  assert.match(chunks[2], /loss=0\.2500\n$/);
});

Deno.test("TTY redraws one line with \\r and ends with a newline", () => {
  let t = 0;
  const { chunks, stream } = fakeStream(true);
  const bar = new Progress({ total: 4, stream, every: 0, now: () => t, width: 4 });
  t = 1000;
  bar.update(1, { note: "a-long-field-value" });
  t = 2000;
  bar.update(2, { note: "b" });
  bar.done();
  bar.done(); // idempotent
  assert.ok(chunks[0].startsWith("\r1/4 25% |#   |"));
  // The shorter second line is padded to cover the first.
  assert.equal(chunks[1].length, chunks[0].length);
  assert.ok(chunks[1].startsWith("\r2/4 50%"));
  assert.equal(chunks.at(-1), "\n");
  assert.equal(chunks.length, 4);
});

Deno.test("notebook mode: one display, created once then updated in place", () => {
  let t = 0;
  const calls: { bundle: Record<string, string>; id: string; update: boolean }[] = [];
  const written: string[] = [];
  const bar = new Progress({
    total: 10,
    label: "train",
    now: () => t,
    width: 0,
    displayId: "bar-1",
    display: (bundle, o) => calls.push({ bundle, id: o.display_id, update: o.update }),
    stream: { writeSync: (b) => (written.push(new TextDecoder().decode(b)), b.length) },
  });
  for (let i = 1; i <= 10; i++) {
    t = i * 200; // the 500 ms default throttle lets every third or so step through
    bar.update(i, { loss: 1 / i });
  }
  bar.done();
  assert.deepEqual(calls.map((c) => c.id), calls.map(() => "bar-1"));
  assert.deepEqual(calls.map((c) => c.update), [false, ...calls.slice(1).map(() => true)]);
  assert.deepEqual(calls.map((c) => c.bundle["text/plain"].split(" ")[1]), [
    "1/10",
    "4/10",
    "7/10",
    "10/10",
    "10/10",
  ]);
  const last = calls.at(-1)!.bundle;
  assert.match(
    last["text/plain"],
    /^train 10\/10 100% 5\.00 it\/s ETA 0s elapsed 2\.0s loss=0\.1000$/,
  );
  assert.match(last["text/html"], /^<progress value="10" max="10"/);
  assert.deepEqual(written, [], "notebook mode writes no lines to the stream");
});

Deno.test("notebook mode falls back to a line when the display fails", async () => {
  const written: string[] = [];
  const bar = new Progress({
    total: 2,
    label: "x",
    width: 0,
    display: () => Promise.reject(new Error("no kernel")),
    stream: { writeSync: (b) => (written.push(new TextDecoder().decode(b)), b.length) },
  });
  bar.done();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(written.length, 1);
  assert.match(written[0], /^x 0\/2 0% /);
});

Deno.test("outside Deno's Jupyter kernel there is no kernel display", () => {
  assert.equal(kernelDisplay(), null);
  const written: string[] = [];
  const bar = new Progress({
    total: 1,
    stream: { writeSync: (b) => (written.push(new TextDecoder().decode(b)), b.length) },
  });
  bar.done();
  assert.equal(written.length, 1);
});
