// The TypeScript package's copies of the core's constants (crate/js/constants.ts, compiled into
// pkg/constants.js) against the core itself: pkg/nestbox_bg.wasm run in plain Node, asked with
// `coreConstants()`. A code, event or default changed on one side only fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const pkg = new URL('../../pkg/', import.meta.url);
const core = await import(new URL('nestbox.js', pkg));
await core.default({ module_or_path: readFileSync(fileURLToPath(new URL('nestbox_bg.wasm', pkg))) });
const rust = core.coreConstants();
const ts = await import(new URL('constants.js', pkg));

test('error codes: the same list in the same order', () => {
  assert.deepEqual([...ts.ERROR_CODES], rust.errorCodes);
  assert.equal(rust.errorCodes.length, 26);
});

test('audit events: the same list in the same order', () => {
  assert.deepEqual([...ts.AUDIT_EVENTS], rust.auditEvents);
});

test('the codes that may end a host call are the same', () => {
  assert.deepEqual([...ts.HOST_FAILURE_CODES], rust.hostFailureCodes);
  for (const code of rust.hostFailureCodes) assert.ok(rust.errorCodes.includes(code), code);
});

test('every default the TypeScript side knows equals the core default of that name', () => {
  const keys = Object.keys(ts.DEFAULT_LIMITS);
  assert.ok(keys.length > 0);
  for (const key of keys) {
    assert.ok(key in rust.defaults, `the core has no limit called ${key}`);
    assert.equal(Number(ts.DEFAULT_LIMITS[key]), Number(rust.defaults[key]), key);
  }
});

test('the WASI output caps the page holds the worker to are the core defaults', () => {
  for (const key of ['maxStdoutBytes', 'maxStderrBytes']) {
    assert.equal(ts.WASI_OUTPUT_CAPS[key], rust.wasiDefaults[key], key);
  }
});

test("trace span limits: what `trace: true` keeps and the most one may ask for are the core's", () => {
  assert.deepEqual({ ...ts.TRACE_SPANS }, rust.traceSpans);
});

test('the public package re-exports the same error codes', async () => {
  const index = await import(new URL('errors.js', pkg));
  assert.deepEqual([...index.ERROR_CODES], rust.errorCodes);
});

test("one name per limit: memoryLimitBytes is only an alias of the core's maxMemoryBytes", async () => {
  const options = await import(new URL('options.js', pkg));
  assert.ok('maxMemoryBytes' in rust.defaults);
  assert.deepEqual(options.coreLimits({ memoryLimitBytes: 1 << 20 }), { maxMemoryBytes: 1 << 20 });
  assert.deepEqual(options.coreLimits({ maxMemoryBytes: 1 << 20 }), { maxMemoryBytes: 1 << 20 });
  assert.throws(() => options.coreLimits({ memoryLimitBytes: 1 << 20, maxMemoryBytes: 2 << 20 }), {
    code: 'INVALID_ARGUMENT',
  });
});

test("the page's recomputation of audit hashes (audit.ts, sha256.ts) agrees with the core's", async () => {
  const audit = await import(new URL('audit.js', pkg));
  const c = new core.Core({}, undefined);
  // Facts with what JSON escapes (quotes, backslashes, control characters), non-ASCII text and
  // keys whose UTF-16 and UTF-8 orders differ (U+FF5E sorts before U+1F600 in UTF-16 only).
  c.auditRecord({ event: 'revoke', outcome: 'ok', extra: { capability: '1', capabilityName: 'a"b\\c\n\t\u0001é' } });
  c.auditRecord({
    event: 'deny',
    outcome: 'CAPABILITY_QUOTA',
    extra: { '\u{1F600}': 'x', '\uFF5E': 'y', b: '', a: 'z' },
  });
  c.auditRecord({ event: 'limit', outcome: 'TIMEOUT' });
  const entries = c.auditSince(0);
  c.free();
  assert.equal(entries.length, 3);
  for (const entry of entries) assert.equal(audit.entryHash(entry), entry.hash, JSON.stringify(entry));
  // And it is a check: any change of a hashed field changes the hash.
  const changed = { ...entries[0], extra: { ...entries[0].extra, capability: '2' } };
  assert.notEqual(audit.entryHash(changed), entries[0].hash);
  const trail = new audit.AuditTrail(undefined);
  assert.match(trail.receive([{ ...entries[0], outcome: 'TRAP' }]), /hash does not match/);
  assert.equal(trail.receive(entries), undefined);
});
