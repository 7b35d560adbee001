// A small static server for the playground (www/dist) and the browser benchmark: 127.0.0.1
// only, every response `no-store`, `.wasm` as `application/wasm` (what
// `WebAssembly.instantiateStreaming` and wasm-bindgen's loader require), no directory
// listings, no escaping a mount.
//
//   node scripts/serve.mjs [dir] [--port N]    serve `dir` (default www/dist) until Ctrl-C
//
// The port defaults to 8080 (or $PORT); when it is taken, any free port is used instead. The
// URL is printed either way.
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_PORT = 8080;

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** The content type of a file name. */
export const typeOf = (name) => TYPES[extname(name)] ?? 'application/octet-stream';

/**
 * Starts the server. `mounts` maps a URL prefix (`'/'`, `'/pkg/'`) to a directory; `files`
 * maps an exact URL path to `{ body, type }` (bytes made in memory, e.g. compiled guests);
 * `headers` are added to every response (e.g. COOP/COEP for a cross-origin-isolated page).
 * A path ending in `/` serves its `index.html`. Resolves to `{ server, url, port, fellBack }`.
 */
export async function serve({ mounts = {}, files = {}, port = DEFAULT_PORT, host = '127.0.0.1', headers = {} } = {}) {
  const roots = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, resolve(dir)])
    // Longest prefix first, so '/pkg/' wins over '/'.
    .sort((a, b) => b[0].length - a[0].length);
  const server = createServer((req, res) => {
    const send = (status, type, body) => {
      res.writeHead(status, { ...headers, 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, TYPES['.txt'], 'method not allowed\n');
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      return send(400, TYPES['.txt'], 'bad request\n');
    }
    if (path.endsWith('/')) path += 'index.html';
    const file = files[path];
    if (file) return send(200, file.type ?? typeOf(path), file.body);
    for (const [prefix, dir] of roots) {
      if (!path.startsWith(prefix)) continue;
      const target = normalize(join(dir, path.slice(prefix.length)));
      if (!target.startsWith(dir + sep)) break; // no escaping the mount
      try {
        if (!statSync(target).isFile()) break;
        return send(200, typeOf(target), readFileSync(target));
      } catch {
        break;
      }
    }
    return send(404, TYPES['.txt'], `not found: ${path}\n`);
  });
  const listen = (p) =>
    new Promise((ok, fail) => {
      const onError = (error) => fail(error);
      server.once('error', onError);
      server.listen(p, host, () => {
        server.off('error', onError);
        ok();
      });
    });
  let fellBack = false;
  try {
    await listen(port);
  } catch (error) {
    if (error.code !== 'EADDRINUSE' && error.code !== 'EACCES') throw error;
    fellBack = true;
    await listen(0);
  }
  const actual = server.address().port;
  return { server, url: `http://${host}:${actual}/`, port: actual, fellBack, requested: port };
}

/** The port asked for on the command line (`--port N`) or in $PORT, else 8080. */
export function portFrom(argv, env = process.env) {
  const i = argv.indexOf('--port');
  const raw = i >= 0 ? argv[i + 1] : env.PORT;
  if (raw === undefined || raw === '') return DEFAULT_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port: ${raw}`);
  return port;
}

/** One line saying where the server is (and why not on the port asked for). */
export function describeListening({ url, fellBack, requested }, what) {
  return fellBack ? `${what} at ${url} (port ${requested} was taken)` : `${what} at ${url}`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const dir = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--port') ?? 'www/dist';
  try {
    if (!statSync(join(dir, 'index.html')).isFile()) throw new Error();
  } catch {
    console.error(`serve: ${dir}/index.html not found (run \`make www\` first)`);
    process.exit(1);
  }
  const listening = await serve({ mounts: { '/': dir }, port: portFrom(args) });
  console.log(`${describeListening(listening, `serving ${dir}`)} — Ctrl-C to stop`);
}
