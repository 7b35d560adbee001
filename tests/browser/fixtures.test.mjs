// The WAT fixtures: each says on its first line why it exists, each is used by a test, and
// each compiles (npm wabt) to the bytes pinned in fixtures/SHA256SUMS. `BLESS=1` rewrites
// the pins after an intended change.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { compileFixtures } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const sums = join(here, 'fixtures', 'SHA256SUMS');

test('every fixture is pinned, explained and used', async () => {
  const fixtures = await compileFixtures();
  const lines = Object.entries(fixtures).map(([name, f]) => `${f.integrity}  ${name}.wat`);
  if (process.env.BLESS === '1') writeFileSync(sums, `${lines.join('\n')}\n`);
  assert.deepEqual(readFileSync(sums, 'utf8').trim().split('\n'), lines, 'fixtures changed: review, then BLESS=1');
  const tests = readdirSync(here)
    .filter((f) => f.endsWith('.test.mjs'))
    .map((f) => readFileSync(join(here, f), 'utf8'))
    .join('\n');
  for (const [name, f] of Object.entries(fixtures)) {
    assert.match(f.why, /^;; \S/, `${name}.wat: first line must say why it exists`);
    assert.ok(tests.includes(`fx.${name}`) || tests.includes(`'${name}'`), `${name}.wat is used by no test`);
  }
});
