// A compromised or failing worker, for tests: it wraps the real worker script
// (/pkg/worker.js) and misbehaves as its query string and the export names of calls say.
//
//   ?forge=1  rewrites the capability id of every host request to 999 (a forged id)
//   ?lie=1    also turns every failed call reply into a success (the page must not believe it)
//   ?cross=1  sends host requests of sandbox N as sandbox N-1 (another sandbox in a shared worker)
//   ?boot=MODE  tampers with the page's boot message before the real worker sees it:
//             notModule (its module is a plain object), wrongModule (an empty wasm module,
//             not nestbox's core), twice (the boot arrives a second time)
//   ?channel=NAME  a puppet: on BroadcastChannel NAME it reports every message the page sends
//             ({ seen }), posts any message it is given as if the worker had sent it
//             ({ inject }), and rewrites the next message of a kind ({ rewrite, ... }: see
//             REWRITES); each instruction is acknowledged ({ ack }) once it is in force.
//
// A call of these exports never reaches the core:
//   __hang   the worker stops answering (a synchronous infinite loop)
//   __crash  an uncaught exception (the Worker's `error` event)
//   __panic  Core.start throws a non-record, as a Rust panic does (the worker says `fatal`)
const params = new URL(self.location.href).searchParams;
const realPost = self.postMessage.bind(self);

// One-shot rewrites of the real worker's next message of a kind (?channel).
const REWRITES = {
  // A call's reply with one result too many.
  extraResult: (m) =>
    m.type === 'reply' &&
    m.ok &&
    m.request === 'call' && { ...m, value: { ...m.value, results: [...m.value.results, 0] } },
  // A load reply claiming the module was loaded for engine `engine` (not the one asked for).
  loadEngine: (m, { engine }) =>
    m.type === 'reply' && m.ok && m.request === 'load' && { ...m, value: { ...m.value, engine } },
  // A memory read one byte short.
  shortRead: (m) =>
    m.type === 'reply' && m.ok && m.request === 'memoryRead' && { ...m, value: { bytes: m.value.bytes.slice(1) } },
  // A call's metrics with NaN fuel.
  nanMetrics: (m) =>
    m.type === 'reply' &&
    m.ok &&
    m.request === 'call' && { ...m, value: { ...m.value, metrics: { ...m.value.metrics, fuelConsumed: NaN } } },
  // An audit entry whose outcome was changed after it was hashed.
  tamperAudit: (m) =>
    m.type === 'audit' && { ...m, entries: m.entries.map((e, i) => (i === 0 ? { ...e, outcome: 'TRAP' } : e)) },
  // An output notice padded to `bytes` bytes of stdout.
  bigOutput: (m, { bytes }) => m.type === 'output' && { ...m, stdout: new Uint8Array(bytes).fill(0x41) },
  // An instantiate reply naming the instance the previous one made (two instances, one id).
  dupInstance: (m) =>
    m.type === 'reply' &&
    m.ok &&
    m.request === 'instantiate' &&
    lastInstance !== undefined && { ...m, value: { ...m.value, instanceId: lastInstance } },
  // An instantiate reply whose start function "consumed" negative fuel (a tenant pool would
  // credit the window).
  negativeStartFuel: (m) =>
    m.type === 'reply' && m.ok && m.request === 'instantiate' && { ...m, value: { ...m.value, startFuel: -1e9 } },
  // A progress notice whose fuel went back to 0.
  backwardsProgress: (m) => m.type === 'progress' && { ...m, metrics: { ...m.metrics, fuelConsumed: 0 } },
  // A host request turned into a data guest's HTTP request for `url` (the core never sends
  // one the instance was not granted, nor one to a host outside allowedHosts).
  forgeHttp: (m, { url }) =>
    m.type === 'host' && {
      ...m,
      capability: 0xffff_ffff,
      import: 'extism:host/env.http_request',
      args: [],
      http: { url, method: 'GET', headers: {}, body: new Uint8Array() },
    },
  // A traced call's reply whose root span claims another export (or its trace dropped).
  forgeTrace: (m) => {
    if (m.type !== 'reply' || !m.ok || m.request !== 'call' || m.value.trace === undefined) return false;
    const trace = structuredClone(m.value.trace);
    trace.resourceSpans[0].scopeSpans[0].spans[0].name = 'call somethingElse';
    return { ...m, value: { ...m.value, trace } };
  },
  // A trace (a copy of the last one seen) added to a call's reply that asked for none.
  unaskedTrace: (m, { trace }) =>
    m.type === 'reply' && m.ok && m.request === 'call' && { ...m, value: { ...m.value, trace } },
  // A Go guest's capability call naming a capability id the instance was never granted.
  forgeGoCapability: (m) => m.type === 'host' && m.goArgs !== undefined && { ...m, capability: 999 },
  // A Go call's reply whose result is not plain data (a Date: structured-cloneable, not GoData).
  goResultNotData: (m) =>
    m.type === 'reply' &&
    m.ok &&
    m.request === 'call' &&
    m.value.go !== undefined && { ...m, value: { ...m.value, go: { ...m.value.go, result: new Date(0) } } },
  // A plain call's reply with a Go part added (as if the instance were a Go guest).
  goPartOnPlainCall: (m) =>
    m.type === 'reply' &&
    m.ok &&
    m.request === 'call' &&
    m.value.go === undefined && { ...m, value: { ...m.value, go: { result: 1, exports: [] } } },
  // A host request whose first argument is out of the i32 range.
  badArgs: (m) => m.type === 'host' && { ...m, args: [2 ** 40, ...m.args.slice(1)] },
};
const pending = [];
let lastInstance;
const channel = params.has('channel') ? new BroadcastChannel(params.get('channel')) : undefined;
if (channel) {
  channel.onmessage = ({ data }) => {
    if (data.inject) realPost(data.inject);
    if (data.rewrite) pending.push({ rewrite: REWRITES[data.rewrite], options: data });
    if (data.n !== undefined) channel.postMessage({ ack: data.n });
  };
}
const summary = (m) => {
  const { type, id, sandboxId, instanceId, exportName, callId, len } = m;
  return { type, id, sandboxId, instanceId, exportName, callId, len };
};

self.postMessage = (message, transfer) => {
  for (const [i, p] of pending.entries()) {
    const rewritten = p.rewrite(message, p.options);
    if (rewritten) {
      pending.splice(i, 1);
      message = rewritten;
      transfer = [];
      break;
    }
  }
  if (message && message.type === 'reply' && message.ok && message.request === 'instantiate') {
    lastInstance = message.value.instanceId;
  }
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

/** Boot messages this script dispatched itself (not tampered with again). */
const redispatched = new WeakSet();
const BOOTS = {
  notModule: (m) => [{ ...m, module: {} }],
  wrongModule: (m) => [{ ...m, module: new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])) }],
  twice: (m) => [m, { ...m }],
};

// Registered before the real worker's listener, so it sees every message first.
self.addEventListener('message', (event) => {
  const m = event.data;
  if (m && m.type === 'boot' && params.has('boot') && !redispatched.has(m)) {
    event.stopImmediatePropagation();
    for (const data of BOOTS[params.get('boot')](m)) {
      redispatched.add(data);
      self.dispatchEvent(new MessageEvent('message', { data }));
    }
    return;
  }
  if (channel && m) channel.postMessage({ seen: summary(m) });
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
