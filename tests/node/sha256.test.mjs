// The page's synchronous SHA-256 (crate/js/sha256.ts, used to recompute audit hashes as they
// arrive from the worker) against node:crypto: the FIPS 180-4 examples, every length around
// the 64-byte block and its padding boundaries, and a large multi-block input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

const { sha256Hex } = await import(new URL('../../pkg/sha256.js', import.meta.url));
const reference = (bytes) => createHash('sha256').update(bytes).digest('hex');

test('the FIPS 180-4 examples', () => {
  const utf8 = (s) => new TextEncoder().encode(s);
  assert.equal(sha256Hex(utf8('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex(utf8('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(
    sha256Hex(utf8('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
});

test('every length from 0 to 300 bytes and a 1 MiB input agree with node:crypto', () => {
  const data = randomBytes(300);
  for (let n = 0; n <= 300; n++) {
    const bytes = new Uint8Array(data.subarray(0, n));
    assert.equal(sha256Hex(bytes), reference(bytes), `length ${n}`);
  }
  const big = new Uint8Array(randomBytes(1 << 20));
  assert.equal(sha256Hex(big), reference(big));
});
