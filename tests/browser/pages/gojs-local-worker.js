// A worker the test page creates, running the Go js/wasm suite (gojs-suite.js) through
// `nestbox/worker` (/pkg/local.js). Reports to the page.
import * as nb from '/pkg/local.js';
import { goSuite } from '/tests/gojs-suite.js';

self.onmessage = async () => {
  try {
    self.postMessage(await goSuite(nb, () => nb.createLocalSandbox()));
  } catch (e) {
    self.postMessage({ error: `${e?.code ?? ''} ${e?.message ?? e}\n${e?.stack ?? ''}` });
  }
};
