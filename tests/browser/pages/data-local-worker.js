// A worker the test page creates itself, running the data-call suite through `nestbox/worker`
// (/pkg/local.js). Reports to the page.
import { createLocalSandbox } from '/pkg/local.js';
import { dataSuite } from '/tests/data-suite.js';

self.onmessage = async ({ data: { guests, bench } }) => {
  try {
    if (bench) {
      const { benchCalls } = await import('/tests/data-bench.js');
      self.postMessage(await benchCalls(createLocalSandbox, guests, bench));
      return;
    }
    self.postMessage(await dataSuite(createLocalSandbox, guests));
  } catch (e) {
    self.postMessage({ error: `${e?.code ?? ''} ${e?.message ?? e}\n${e?.stack ?? ''}` });
  }
};
