/**
 * Checkpoint locations are checked without touching storage: a local folder or a `gs://` URL whose
 * bucket follows Cloud Storage's naming rules, so a bad `--checkpoints` fails before any work.
 */
import assert from "node:assert/strict";
import { parseGsUrl } from "../lib/storage/gcs_store.ts";
import { storeFor, storeLocationProblem } from "../lib/storage/location.ts";

Deno.test("bucket names follow Cloud Storage's rules", () => {
  const ok = [
    "abc",
    "my-bucket",
    "my_bucket.v2",
    "b.example.com",
    "0-9",
    "a".repeat(63),
    // With dots: up to 222 characters, each dot-separated part at most 63.
    ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(30)].join("."),
  ];
  for (const b of ok) {
    assert.equal(storeLocationProblem(`gs://${b}/p`), null, b);
    assert.equal(parseGsUrl(`gs://${b}/p`).bucket, b);
  }
  const bad: [string, RegExp][] = [
    ["A", /uppercase/],
    ["Bad_Bucket", /uppercase/],
    ["ab", /3 to 63 characters/],
    ["a".repeat(64), /3 to 63 characters/],
    [["a".repeat(64), "com"].join("."), /each dot-separated part at most 63/],
    [Array(56).fill("abc").join("."), /at most 222 characters/],
    ["-abc", /start and end with a letter or digit/],
    ["abc_", /start and end with a letter or digit/],
    ["a..b", /empty dot-separated part/],
    ["my bucket", /only lowercase letters, digits/],
    ["my$bucket", /only lowercase letters, digits/],
    ["192.168.5.4", /IP address/],
    ["goog-data", /cannot begin with "goog"/],
    ["my-google-bucket", /cannot contain "google"/],
    ["my-g00gle-bucket", /cannot contain "google"/],
  ];
  for (const [b, why] of bad) {
    const p = storeLocationProblem(`gs://${b}/p`);
    assert.ok(p !== null, `${b} accepted`);
    assert.match(p, new RegExp(`^invalid bucket name "${b.replace(/[.$]/g, "\\$&")}"`));
    assert.match(p, why, b);
    assert.throws(() => parseGsUrl(`gs://${b}/p`), (e: Error) => {
      assert.equal(e.message, `"gs://${b}/p": ${p}`);
      return true;
    });
  }
});

Deno.test("storeLocationProblem: folders are fine, other URL schemes and bad gs:// URLs are not", () => {
  assert.equal(storeLocationProblem("runs/x/ckpt"), null);
  assert.equal(storeLocationProblem("/tmp/ckpt"), null);
  assert.equal(storeLocationProblem("gs://bkt"), null);
  assert.equal(
    storeLocationProblem("s3://b/p"),
    "no built-in store for URL scheme s3:// (expected a folder or gs://bucket/prefix)",
  );
  assert.equal(storeLocationProblem("gs:///p"), 'invalid bucket name "" (3 to 63 characters)');
  assert.match(storeLocationProblem("gs://bkt/a//b")!, /invalid object prefix "a\/\/b"/);
  assert.equal(
    storeLocationProblem(""),
    "empty location (expected a folder or gs://bucket/prefix)",
  );
  // storeFor refuses exactly what the check refuses, with the location in front.
  assert.throws(() => storeFor("gs://A/p"), /^Error: "gs:\/\/A\/p": invalid bucket name "A"/);
  assert.throws(() => storeFor("s3://b/p"), /"s3:\/\/b\/p": no built-in store/);
});
