// The page's half of tests/browser/wasi-cases.mjs: a case's spec (`specOf`, made of JSON: files
// as base64, stdin as a URL or text, BigInts as strings) turned into `runWasi` options.
// Imported by wasi.test.mjs, native_wasi.test.mjs and native_differential.test.mjs.

const b64 = (s) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));

/** `runWasi` options for `spec` (its stdin fetched when it is a URL). */
export async function wasiOptions(spec) {
  let stdin;
  if (spec.stdin?.url) stdin = new Uint8Array(await (await fetch(spec.stdin.url)).arrayBuffer());
  else if (spec.stdin?.text !== undefined) stdin = spec.stdin.text;
  const preopens = spec.preopens.map((p) => ({
    ...p,
    files: Object.fromEntries(Object.entries(p.files).map(([k, v]) => [k, v === null ? null : b64(v)])),
  }));
  const options = {
    args: spec.args,
    env: spec.env,
    preopens,
    stdin,
    limits: spec.limits,
    timeoutMs: spec.timeoutMs,
  };
  if (spec.deterministic) {
    options.deterministic = {
      seed: BigInt(spec.deterministic.seed),
      startTimeNs: BigInt(spec.deterministic.startTimeNs),
    };
  }
  return options;
}
