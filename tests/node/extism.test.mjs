// Differential: the extism-pdk plugin of tests/data/rust (built by `make guests`) run by
// Extism's own JS runtime (@extism/extism, on Node's WebAssembly engine) and by nestbox
// (`nestbox call`, the core natively) give the same outputs, errors and variable state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import createPlugin from '@extism/extism';

const root = new URL('../../', import.meta.url);
const plugin = new URL('target/data-guests/rust/data_plugin.wasm', root).pathname;
const wasm = readFileSync(plugin);
const cli = ['run', '-q', '-p', 'nestbox-cli', '--', 'call'];

/** nestbox's answer: `repeat` calls on one instance, output bytes, exit status and stderr. */
function nestbox(exportName, input, { repeat = 1, config = {} } = {}) {
  const args = [...cli, '--repeat', String(repeat)];
  for (const [k, v] of Object.entries(config)) args.push('--config', `${k}=${v}`);
  const run = spawnSync('cargo', [...args, plugin, exportName, input], { cwd: root, encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Extism's answer for the same calls on one plugin instance. */
async function extism(exportName, input, { repeat = 1, config = {} } = {}) {
  const p = await createPlugin({ wasm: [{ data: wasm }], config }, { useWasi: false, runInWorker: false });
  try {
    let out = '';
    for (let i = 0; i < repeat; i++) out += (await p.call(exportName, input))?.text() ?? '';
    return { ok: true, out };
  } catch (error) {
    return { ok: false, message: String(error?.message ?? error) };
  } finally {
    await p.close();
  }
}

test('the nestbox CLI is built', () => {
  execFileSync('cargo', ['build', '-q', '-p', 'nestbox-cli'], { cwd: root, stdio: 'inherit' });
});

for (const [name, exportName, input, options] of [
  ['count_vowels of "Hello"', 'count_vowels', 'Hello', {}],
  [
    'count_vowels three times on one instance (a variable keeps the total)',
    'count_vowels',
    'Hello World!',
    { repeat: 3 },
  ],
  ['count_vowels with the vowels from config', 'count_vowels', 'Hexyz yyy', { config: { vowels: 'xyz' } }],
  ['count_vowels of non-ASCII text and of nothing', 'count_vowels', 'Ünïcödé aeiou', { repeat: 2 }],
  ['echo', 'echo', 'bytes in, bytes out: {"json": [1, 2]}', {}],
  ['greet with a config value', 'greet', 'world', { config: { greeting: 'Hi, ' } }],
]) {
  test(`same as Extism: ${name}`, async () => {
    const theirs = await extism(exportName, input, options);
    assert.ok(theirs.ok, theirs.message);
    const ours = nestbox(exportName, input, options);
    assert.equal(ours.status, 0, ours.stderr);
    assert.equal(ours.stdout, theirs.out);
  });
}

test("same as Extism: a plugin's error is an error, with the plugin's message", async () => {
  const theirs = await extism('fail', 'it went wrong');
  assert.equal(theirs.ok, false);
  assert.match(theirs.message, /it went wrong/);
  const ours = nestbox('fail', 'it went wrong');
  assert.notEqual(ours.status, 0);
  assert.equal(ours.stdout, '');
  assert.match(ours.stderr, /nestbox: GUEST_ERROR: .*it went wrong/);
});
