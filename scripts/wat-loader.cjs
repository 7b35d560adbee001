// A webpack loader for the playground's guests (www/guests/*.wat): compiles the WAT with the
// npm `wabt` package, as the browser tests' harness does, and refuses to build unless the
// bytes hash to the digest pinned for that file in the SHA256SUMS next to it — the page
// passes that pinned digest to `sandbox.load`, so a guest nobody reviewed cannot ship.
//
//   import demo from './guests/demo.wat';
//     → { url, integrity, sizeBytes }: `url` is the compiled module, emitted as an asset via
//       `new URL('./demo.wat?wasm', import.meta.url)` (the `?wasm` rule of webpack.config.js)
//
// CommonJS on purpose: webpack loads any loader this way without configuration.
'use strict';

const { createHash } = require('node:crypto');
const { readFileSync } = require('node:fs');
const { basename, dirname, join, relative } = require('node:path');

let wabt;

/** The pinned `sha256-…` for `name` in a SHA256SUMS file (`<digest>  <file>` lines). */
function pinnedDigest(sumsPath, name) {
  let text;
  try {
    text = readFileSync(sumsPath, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [digest, file] = line.trim().split(/\s+/);
    if (file === name) return digest;
  }
  return undefined;
}

module.exports = function watLoader(source) {
  const done = this.async();
  const name = basename(this.resourcePath);
  const sums = join(dirname(this.resourcePath), 'SHA256SUMS');
  this.addDependency(sums);
  const where = relative(this.rootContext, this.resourcePath);
  (wabt ??= require('wabt')())
    .then((w) => {
      const module = w.parseWat(name, source.toString('utf8'));
      let bytes;
      try {
        module.validate();
        bytes = Buffer.from(module.toBinary({}).buffer);
      } finally {
        module.destroy();
      }
      const integrity = `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
      const pinned = pinnedDigest(sums, name);
      if (pinned !== integrity) {
        throw new Error(
          `${where} compiles to ${integrity} but ${relative(this.rootContext, sums)} pins ${pinned ?? 'nothing'} ` +
            `for it: review the guest, then pin the new digest`,
        );
      }
      if (this.resourceQuery === '?wasm') return done(null, bytes);
      const url = JSON.stringify(`./${name}?wasm`);
      done(
        null,
        `export default Object.freeze({ url: new URL(${url}, import.meta.url), ` +
          `integrity: ${JSON.stringify(integrity)}, sizeBytes: ${bytes.length} });\n`,
      );
    })
    .catch(done);
};

// The source arrives as a Buffer (and the `?wasm` output leaves as one).
module.exports.raw = true;
