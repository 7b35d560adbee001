// The compute benchmark's "plain" column: the uninstrumented guest on the browser's own engine
// (WebAssembly.compile / instantiate) in a dedicated worker, as nestbox's tiers run in one.
// Messages: { op: 'compile', url } once, then { op: 'call', exportName, args } (a new instance
// each call, so every call does the same work); each answered { ok, result } with the result as
// a string (i64 results are bigints), or { ok: false, error }.
let module;
onmessage = async ({ data }) => {
  try {
    if (data.op === 'compile') {
      module = await WebAssembly.compile(await (await fetch(data.url)).arrayBuffer());
      postMessage({ ok: true });
    } else if (data.op === 'call') {
      const instance = await WebAssembly.instantiate(module);
      const t0 = performance.now();
      const result = instance.exports[data.exportName](...data.args);
      postMessage({ ok: true, result: String(result), workerMs: performance.now() - t0 });
    } else {
      postMessage({ ok: false, error: `unknown op ${data.op}` });
    }
  } catch (e) {
    postMessage({ ok: false, error: String(e) });
  }
};
