// The playground page (www/) bundled by webpack 5: `make www` → www/dist/ (served by
// `make demo`).
//
// Nothing here is specific to nestbox's worker or wasm: the package creates its worker with
// `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })` and wasm-bindgen
// fetches `new URL('nestbox_bg.wasm', import.meta.url)`; webpack 5 finds both, bundles the
// worker as its own chunk and emits the .wasm as an asset. The only rules are for the
// playground's own guests (WAT compiled at build time, checked against a pinned digest).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const pkg = join(root, 'pkg');
const watLoader = join(root, 'scripts/wat-loader.cjs');

/**
 * `nestbox` and `nestbox/worker` resolve to the package built in pkg/ (`make package`), by
 * its own exports map — as if it were installed — instead of node_modules.
 */
function nestboxAliases() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
  } catch {
    throw new Error('pkg/package.json not found: run `make build package` first');
  }
  if (typeof manifest.exports !== 'object' || manifest.exports === null) {
    // wasm-pack's own package.json, not yet rewritten by scripts/build-package.mjs.
    throw new Error('pkg/package.json has no exports map: run `make package` after `make build`');
  }
  const aliases = {};
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    const file = typeof target === 'string' ? target : (target.import ?? target.default);
    if (!file.endsWith('.js')) continue;
    // `$`: exactly this specifier, so 'nestbox' does not also capture 'nestbox/worker'.
    aliases[`${join(manifest.name, subpath)}$`] = join(pkg, file);
  }
  return aliases;
}

/** Emits www/index.html as is: the page is one static file naming `main.js`. */
class CopyIndexHtml {
  apply(compiler) {
    const { RawSource } = compiler.webpack.sources;
    const source = join(root, 'www/index.html');
    compiler.hooks.thisCompilation.tap('CopyIndexHtml', (compilation) => {
      compilation.hooks.processAssets.tap(
        { name: 'CopyIndexHtml', stage: compilation.constructor.PROCESS_ASSETS_STAGE_ADDITIONAL },
        () => {
          compilation.fileDependencies.add(source);
          compilation.emitAsset('index.html', new RawSource(readFileSync(source)));
        },
      );
    });
  }
}

/**
 * The playground's example WASI guests: real programs of tests/wasi/ as built by `make guests`
 * (tests/wasi/build.sh → target/wasi-guests/), emitted as `examples/<lang>-<name>.wasm` with
 * `examples.json` listing each one's URL, size, SHA-256 (computed here, from the bytes
 * emitted, so the page's `integrity` is that of exactly what it serves) and a ready-made run
 * (args, env, stdin, files). The build fails when a guest is missing.
 */
const EXAMPLES = JSON.parse(readFileSync(join(root, 'www/examples.json'), 'utf8'));

class ExampleGuests {
  apply(compiler) {
    const { RawSource } = compiler.webpack.sources;
    compiler.hooks.thisCompilation.tap('ExampleGuests', (compilation) => {
      compilation.hooks.processAssets.tap(
        { name: 'ExampleGuests', stage: compilation.constructor.PROCESS_ASSETS_STAGE_ADDITIONAL },
        () => {
          const listed = [];
          for (const example of EXAMPLES.examples) {
            const source = join(root, example.path);
            let bytes;
            try {
              bytes = readFileSync(source);
            } catch {
              throw new Error(`${example.path} not found: run \`make guests\` first`);
            }
            compilation.fileDependencies.add(source);
            const file = `examples/${example.id}.wasm`;
            compilation.emitAsset(file, new RawSource(bytes));
            const integrity = `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
            const { path: _path, ...rest } = example;
            listed.push({ ...rest, url: `./${file}`, integrity, sizeBytes: bytes.length, source: example.path });
          }
          compilation.emitAsset('examples.json', new RawSource(JSON.stringify({ examples: listed }, null, 2)));
        },
      );
    });
  }
}

export default (_env, argv) => ({
  mode: argv.mode ?? 'production',
  context: root,
  entry: { main: './www/index.js' },
  output: {
    path: join(root, 'www/dist'),
    filename: '[name].js',
    chunkFilename: '[name].[contenthash:8].js',
    assetModuleFilename: '[name].[contenthash:8][ext]',
    publicPath: 'auto',
    clean: true,
  },
  resolve: { alias: nestboxAliases() },
  module: {
    rules: [
      {
        test: /\.wat$/,
        oneOf: [
          // `new URL('./demo.wat?wasm', import.meta.url)`: the compiled bytes, as a file.
          {
            resourceQuery: /^\?wasm$/,
            type: 'asset/resource',
            generator: { filename: 'guests/[name].[contenthash:8].wasm' },
            use: watLoader,
          },
          // `import demo from './demo.wat'`: { url, integrity, sizeBytes }.
          { type: 'javascript/esm', use: watLoader },
        ],
      },
    ],
  },
  plugins: [new CopyIndexHtml(), new ExampleGuests()],
  devtool: 'source-map',
  // nestbox_bg.wasm (wasmi and the core) is ~1.7 MB raw, ~0.45 MB gzipped: expected, and
  // fetched by the worker, not by the page's first paint.
  performance: { hints: false },
});
