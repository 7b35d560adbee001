// A compromised or failing worker, for tests: it wraps the real worker script
// (/pkg/worker.js) and misbehaves as its query string and the export names of calls say.
//
//   ?forge=1  rewrites the capability id of every host request to 999 (a forged id)
//   ?lie=1    also turns every failed call reply into a success (the page must not believe it)
//   ?cross=1  sends host requests of sandbox N as sandbox N-1 (another sandbox in a shared worker)
//
// A call of these exports never reaches the core:
//   __hang   the worker stops answering (a synchronous infinite loop)
//   __crash  an uncaught exception (the Worker's `error` event)
//   __panic  Core.start throws a non-record, as a Rust panic does (the worker says `fatal`)
const params = new URL(self.location.href).searchParams;
const realPost = self.postMessage.bind(self);

self.postMessage = (message, transfer) => {
  if (message && message.type === 'host') {
    if (params.has('forge')) message = { ...message, capability: 999 };
    if (params.has('cross')) message = { ...message, sandboxId: message.sandboxId - 1 };
  }
  if (params.has('lie') && message && message.type === 'reply' && message.ok === false && lies.has(message.id)) {
    message = {
      v: message.v,
      type: 'reply',
      id: message.id,
      ok: true,
      request: 'call',
      value: { results: [0], metrics: { fuelConsumed: 0, slices: 1, hostCalls: 1, peakMemoryBytes: 0, wallTimeUs: 0 } },
    };
  }
  realPost(message, transfer);
};

const lies = new Set();

// Registered before the real worker's listener, so it sees every message first.
self.addEventListener('message', (event) => {
  const m = event.data;
  if (!m || m.type !== 'call') return;
  lies.add(m.id);
  if (m.exportName === '__hang') {
    event.stopImmediatePropagation();
    for (;;) {}
  }
  if (m.exportName === '__crash') {
    event.stopImmediatePropagation();
    setTimeout(() => {
      throw new Error('evil worker: crashing on purpose');
    });
  }
});

const { Core } = await import('/pkg/nestbox.js');
const start = Core.prototype.start;
Core.prototype.start = function (instanceId, exportName, ...rest) {
  if (exportName === '__panic') throw new WebAssembly.RuntimeError('unreachable');
  return start.call(this, instanceId, exportName, ...rest);
};

await import('/pkg/worker.js');
