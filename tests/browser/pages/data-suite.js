// The data-call suite (docs/data-abi.md), run the same way in the page (`createSandbox`, the
// core in nestbox's worker) and in a worker of the page's own (`nestbox/worker`'s
// `createLocalSandbox`): `make(options)` creates the sandbox, `guests` are {url, integrity} of
// the Extism plugin (extism-pdk) and the C guest. Returns a plain report.

/** The code (and a few details) of what `promiseOrFn` throws, or `null` when it does not. */
async function codeOf(promiseOrFn) {
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
    return null;
  } catch (e) {
    return {
      code: e.code,
      name: e.name,
      message: e.message,
      cause: e.details?.cause,
      trapCode: e.details?.trapCode,
      limit: e.details?.limit,
    };
  }
}

export async function dataSuite(make, guests) {
  const report = {};
  const sb = await make({});
  const plugin = await sb.load(guests.plugin.url, { integrity: guests.plugin.integrity });
  const c = await sb.load(guests.c.url, { integrity: guests.c.integrity });

  // The Extism plugin, unchanged: what Extism returns, the variable persisting between calls.
  const p = await sb.instantiate(plugin);
  const first = await p.call('count_vowels', 'Hello');
  report.countText = first.text();
  report.countJson = (await p.call('count_vowels', 'Hello World!')).json();
  report.countBytes = Array.from(first.bytes().slice(0, 9));
  report.byteLength = first.byteLength;
  report.metrics = first.metrics.fuelConsumed > 0 && first.metrics.hostCalls === 0;

  // Bytes, strings and JSON values in; bytes out unchanged.
  const all = new Uint8Array(256).map((_, i) => i);
  report.echoBytes = Array.from((await p.call('echo', all)).bytes()).join(',') === Array.from(all).join(',');
  report.echoBuffer = (await p.call('echo', all.buffer)).byteLength;
  report.echoJson = (await p.call('echo', { a: [1, 2, { b: 'ü' }], n: null })).json();
  report.echoNumber = (await p.call('echo', 42)).json();
  report.echoEmpty = (await p.call('echo', '')).byteLength;

  // Reading the output the wrong way: INVALID_ARGUMENT (a TypeError), the result still readable.
  const bad = await p.call('echo', new Uint8Array([0xff, 0xfe, 0x00]));
  report.badText = await codeOf(() => bad.text());
  report.badJson = await codeOf(() => bad.json());
  report.notJson = await codeOf(async () => (await p.call('echo', 'not json {')).json());
  report.badStillBytes = Array.from(bad.bytes());
  report.unserialisable = await codeOf(() => p.call('echo', { big: 1n }));

  // The guest's own errors; config and logs.
  report.guestError = await codeOf(p.call('fail', 'nope'));
  report.afterGuestError = (await p.call('echo', 'still here')).text();
  report.http = await codeOf(p.call('http_get', 'https://example.com/'));
  const configured = await sb.instantiate(plugin, {
    config: { greeting: 'bonjour', vowels: 'aeiouyAEIOUY' },
    maxVarBytes: 4096,
  });
  const greeted = await configured.call('greet', 'ada');
  report.greet = greeted.text();
  report.logs = greeted.logs;
  report.configVowels = (await configured.call('count_vowels', 'Yay')).json();
  report.badConfig = await codeOf(sb.instantiate(plugin, { config: { x: 1 } }));
  report.unknownOption = await codeOf(sb.instantiate(plugin, { configs: {} }));

  // The C guest: the same ABI, and its lies.
  const cg = await sb.instantiate(c);
  report.cUpper = (await cg.call('upper', 'Hello, C')).text();
  report.cLength = await codeOf((await sb.instantiate(c)).call('lie_length', ''));
  report.cPointer = await codeOf((await sb.instantiate(c)).call('lie_pointer', ''));
  report.notData = await codeOf(cg.call('nope', 'x'));
  report.numericStill = (await cg.call('add', [2, 3])).results;
  for (const instance of [p, configured, cg]) instance.dispose();

  // HTTP only through the capability the instance was given, to its allowed hosts.
  const here = `${location.origin}/fixtures/manifest.json`;
  const real = await sb.instantiate(plugin, { http: { allowedHosts: [location.hostname] } });
  report.httpReal = (await real.call('http_get', here)).text().slice(0, 5);
  const seen = [];
  const fakeFetch = async (url, init) => {
    seen.push(`${init.method} ${url} ${init.redirect}`);
    return new Response(url.includes('big') ? 'ten bytes!' : 'fake body', { status: 202 });
  };
  const fake = await sb.instantiate(plugin, {
    http: { allowedHosts: ['*.example.com'], maxResponseBytes: 9, fetch: fakeFetch },
  });
  report.httpFake = (await fake.call('http_get', 'https://api.example.com/x')).text();
  report.httpSeen = seen;
  report.httpOtherHost = await codeOf(fake.call('http_get', 'https://example.org/'));
  report.httpTooBig = await codeOf(
    (await sb.instantiate(plugin, { http: { allowedHosts: ['*'], fetch: fakeFetch, maxResponseBytes: 9 } })).call(
      'http_get',
      'https://a.example.com/big',
    ),
  );
  report.httpSeenAfter = seen.length;
  report.httpBadOption = await codeOf(sb.instantiate(plugin, { http: { allowedHosts: 'x' } }));
  real.dispose();

  // A WASI reactor kept alive (instantiateWasi): _initialize once, files and state persist,
  // stdout streams during each call, dispose ends it.
  const rm = await sb.load(guests.reactor.url, { integrity: guests.reactor.integrity });
  const chunks = [];
  const decoder = new TextDecoder();
  const r = await sb.instantiateWasi(rm, {
    preopens: [{ guestPath: '/data' }],
    onStdout: (chunk) => chunks.push(decoder.decode(chunk)),
  });
  report.reactorInitOut = chunks.splice(0).join('');
  report.reactorInits = (await r.call('inits')).results;
  report.reactorAppend1 = (await r.call('append', 'ab')).text();
  report.reactorOut1 = chunks.splice(0).join('');
  report.reactorAppend2 = (await r.call('append', new TextEncoder().encode('cd'))).text();
  report.reactorOut2 = chunks.splice(0).join('');
  const files = await r.files();
  report.reactorFile = decoder.decode(files['/data']['log.txt'].data);
  report.reactorCalls = (await r.call('calls')).results;
  report.reactorInitsAfter = (await r.call('inits')).results;
  r.dispose();
  report.reactorDisposed = await codeOf(r.call('calls'));
  report.reactorAsyncStdin = await codeOf(sb.instantiateWasi(rm, { stdin: new ReadableStream() }));
  report.filesOfPlain = await codeOf(async () => (await sb.instantiate(c)).files());

  // Input and output caps.
  const small = await make({ limits: { maxInputBytes: 64, maxOutputBytes: 16 } });
  const smallPlugin = await small.load(guests.plugin.url, { integrity: guests.plugin.integrity });
  const s = await small.instantiate(smallPlugin);
  report.inputOver = await codeOf(s.call('echo', new Uint8Array(65)));
  report.afterInputOver = (await s.call('echo', 'x'.repeat(16))).byteLength;
  report.outputOver = await codeOf(s.call('echo', 'x'.repeat(17)));
  report.afterOutputOver = await codeOf(s.call('echo', 'x'));
  small.dispose();
  sb.dispose();
  return report;
}
