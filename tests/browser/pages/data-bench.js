// The cost of one call that passes 1 KiB in and out (the data ABI), next to a numeric call,
// in whatever sandbox `make` creates (the page's, or nestbox/worker's). Mean of `n` calls.

// performance.now() is coarse (100 µs) without cross-origin isolation: time the whole run of
// `n` calls and divide.
async function mean(n, f) {
  for (let i = 0; i < 10; i++) await f();
  const t = performance.now();
  for (let i = 0; i < n; i++) await f();
  return ((performance.now() - t) * 1000) / n;
}

export async function benchCalls(make, guests, { n }) {
  const sb = await make({});
  const c = await sb.instantiate(await sb.load(guests.c.url, { integrity: guests.c.integrity }));
  const plugin = await sb.instantiate(await sb.load(guests.plugin.url, { integrity: guests.plugin.integrity }));
  const kib = new Uint8Array(1024).map((_, i) => i & 0xff);
  const check = (r) => {
    if (r.byteLength !== 1024) throw new Error(`echo returned ${r.byteLength} bytes`);
  };
  const report = {
    numericUs: await mean(n, () => c.call('add', [2, 3])),
    cEcho1KiBUs: await mean(n, async () => check(await c.call('echo', kib))),
    pluginEcho1KiBUs: await mean(n, async () => check(await plugin.call('echo', kib))),
  };
  report.pluginFuel = (await plugin.call('echo', kib)).metrics.fuelConsumed;
  report.cFuel = (await c.call('echo', kib)).metrics.fuelConsumed;
  sb.dispose();
  return report;
}
