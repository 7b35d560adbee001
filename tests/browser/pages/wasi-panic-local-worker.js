// A worker the test page creates itself: runs the `wasi_panic` fixture (writes to stdout and
// stderr, then traps) through `nestbox/worker` (/pkg/local.js) and reports the error.
import { createLocalSandbox } from '/pkg/local.js';

self.onmessage = async ({ data: fixture }) => {
  try {
    const sb = await createLocalSandbox();
    const mod = await sb.load(fixture.url, { integrity: fixture.integrity });
    const e = await sb.runWasi(mod).then(
      (r) => ({ resolved: true, exitCode: r.exitCode }),
      (e) => ({
        code: e.code,
        trapCode: e.details?.trapCode,
        stdoutIsBytes: e.details?.stdout instanceof Uint8Array,
        stderrIsBytes: e.details?.stderr instanceof Uint8Array,
        stdout: e.details?.stdout && new TextDecoder().decode(e.details.stdout),
        stderr: e.details?.stderr && new TextDecoder().decode(e.details.stderr),
        fuelConsumed: e.details?.metrics?.fuelConsumed,
      }),
    );
    sb.dispose();
    self.postMessage({ e });
  } catch (error) {
    self.postMessage({ error: String(error?.stack ?? error) });
  }
};
