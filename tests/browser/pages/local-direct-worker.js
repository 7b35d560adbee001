// nestbox/worker's direct path (a syncCapability called from inside the guest's call): its
// values, memory, and every way it can fail. Runs one case per message ({ guest, name }) and
// answers { ok, ... } or { error }. The guest is tests/browser/fixtures/direct_host.wat.
import { capability, createLocalSandbox, revoke, syncCapability } from '/pkg/local.js';

const describe = (e) => ({
  code: e?.code,
  message: e?.message,
  name: e?.constructor?.name,
  cause: e?.details?.cause,
  capability: e?.details?.capability,
  capabilityName: e?.details?.capabilityName,
  hostCalls: e?.details?.metrics?.hostCalls,
  denials: e?.details?.metrics?.denials,
  trapCode: e?.details?.trapCode,
});

const caught = async (promise) => {
  try {
    return { value: await promise };
  } catch (e) {
    return { error: describe(e) };
  }
};

const id = syncCapability((_mem, i) => i, { params: ['i32'], results: ['i32'] });
const noMix = syncCapability(() => [0n, 0], { params: ['i64', 'f64', 'f32', 'i32'], results: ['i64', 'f64'] });
const noPeek = syncCapability(() => 0, { params: ['i32'], results: ['i32'] });

async function setup(guest, imports, limits = {}) {
  const sb = await createLocalSandbox({ limits: { timeoutMs: 10_000, ...limits } });
  const mod = await sb.load(guest.url, { integrity: guest.integrity });
  const inst = await sb.instantiate(mod, { imports: { env: { next: id, mix: noMix, peek: noPeek, ...imports } } });
  return { sb, mod, inst };
}

/** After a failure the sandbox still runs a fresh instance correctly. */
async function stillWorks(sb, mod) {
  const fresh = await sb.instantiate(mod, { imports: { env: { next: id, mix: noMix, peek: noPeek } } });
  return (await fresh.call('run', [100])).results[0] === 4950;
}

const cases = {
  async values(guest) {
    const seen = [];
    const mix = syncCapability(
      (_mem, a, b, c, d) => {
        seen.push([typeof a, String(a), b, c, d]);
        return [a * 2n, b + c + d];
      },
      { params: ['i64', 'f64', 'f32', 'i32'], results: ['i64', 'f64'] },
    );
    const { sb, inst } = await setup(guest, { mix });
    const big = (await inst.call('mix', [-(2n ** 40n), 1.5, 0.25, -3])).results;
    // 2^63-1 doubled wraps (i64 arithmetic in the host is BigInt: the result is range-checked).
    const wrapped = await caught(inst.call('mix', [2n ** 62n, 0, 0, 0]));
    const loop = await inst.call('run', [10_000]);
    sb.dispose();
    return {
      seen,
      big: big.map(String),
      wrapped: wrapped.value?.results.map(String) ?? wrapped.error,
      loop: loop.results[0],
      hostCalls: loop.metrics.hostCalls,
    };
  },

  async fuel(guest) {
    // The same guest with an async capability (the step path): the same fuel, host-call count.
    const { sb, mod, inst } = await setup(guest, {});
    const direct = (await inst.call('run', [500])).metrics;
    const slow = await sb.instantiate(mod, {
      imports: {
        env: { next: capability((_m, i) => i, { params: ['i32'], results: ['i32'] }), mix: noMix, peek: noPeek },
      },
    });
    const stepped = (await slow.call('run', [500])).metrics;
    sb.dispose();
    return { direct: [direct.fuelConsumed, direct.hostCalls], stepped: [stepped.fuelConsumed, stepped.hostCalls] };
  },

  async memory(guest) {
    let kept;
    const peek = syncCapability(
      (mem, ptr) => {
        kept = mem;
        return mem.read(ptr, 1)[0];
      },
      { params: ['i32'], results: ['i32'] },
    );
    const { sb, inst } = await setup(guest, { peek });
    const result = (await inst.call('grow_and_peek')).results[0];
    let after;
    try {
      kept.read(0, 1);
    } catch (e) {
      after = describe(e);
    }
    const size = inst.memory.size();
    sb.dispose();
    return { result, after, size };
  },

  async throws(guest) {
    let n = 0;
    const next = syncCapability(
      (_m, i) => {
        if (++n === 3) throw new Error('boom');
        return i;
      },
      { params: ['i32'], results: ['i32'], name: 'flaky' },
    );
    const { sb, mod, inst } = await setup(guest, { next });
    const failed = await caught(inst.call('run', [10]));
    const again = await caught(inst.call('run', [1]));
    return { failed: failed.error, again: again.error, works: await stillWorks(sb, mod) };
  },

  async wrongTypes(guest) {
    const out = {};
    for (const [label, answer] of [
      ['string', () => 'x'],
      ['bigint for i32', () => 1n],
      ['over 2^32', () => 2 ** 32],
      ['fraction', () => 1.5],
      ['array of two', () => [1, 2]],
      ['nothing', () => undefined],
    ]) {
      const next = syncCapability(answer, { params: ['i32'], results: ['i32'] });
      const { sb, inst } = await setup(guest, { next });
      out[label] = (await caught(inst.call('run', [5]))).error;
      sb.dispose();
    }
    // Accepted as the step path accepts them: [x] for one result, 2^32-1 wraps to -1.
    const one = syncCapability(() => [2], { params: ['i32'], results: ['i32'] });
    const wrap = syncCapability(() => 0xffff_ffff, { params: ['i32'], results: ['i32'] });
    const { sb, inst } = await setup(guest, { next: one });
    out.array = (await inst.call('run', [3])).results[0];
    const w = await sb.instantiate(await sb.load(guest.url, { integrity: guest.integrity }), {
      imports: { env: { next: wrap, mix: noMix, peek: noPeek } },
    });
    out.wrapped = (await w.call('run', [3])).results[0];
    sb.dispose();
    return out;
  },

  async revokedMidCall(guest) {
    let n = 0;
    const next = syncCapability(
      (_m, i) => {
        if (++n === 5) revoke(next);
        return i;
      },
      { params: ['i32'], results: ['i32'], name: 'once' },
    );
    const { sb, inst } = await setup(guest, { next });
    const failed = await caught(inst.call('run', [100]));
    const events = (await sb.audit.entries()).map((e) => `${e.event}:${e.outcome}`);
    const verified = await sb.audit.verify();
    return { failed: failed.error, calls: n, events, verified: verified.ok };
  },

  async quota(guest) {
    const next = syncCapability((_m, i) => i, { params: ['i32'], results: ['i32'], quota: { maxCalls: 10 } });
    const { sb, inst } = await setup(guest, { next });
    const within = (await inst.call('run', [10])).results[0];
    const fresh = await sb.instantiate(await sb.load(guest.url, { integrity: guest.integrity }), {
      imports: { env: { next, mix: noMix, peek: noPeek } },
    });
    const failed = await caught(fresh.call('run', [1]));
    const deny = (await sb.audit.entries()).filter((e) => e.event === 'deny').map((e) => e.outcome);
    return { within, failed: failed.error, deny, denials: sb.stats.denials };
  },

  async reentry(guest) {
    const out = {};
    let inst;
    let other;
    let sb;
    const next = syncCapability(
      (_m, i) => {
        if (i === 0) {
          try {
            inst.memory.size();
          } catch (e) {
            out.memory = describe(e);
          }
          try {
            sb.stats; // counters only: allowed
            out.stats = true;
          } catch (e) {
            out.stats = describe(e);
          }
          out.otherCall = other.call('run', [1]).then(
            () => 'resolved',
            (e) => describe(e),
          );
          out.load = sb.load(guest.url, { integrity: guest.integrity }).then(
            () => 'resolved',
            (e) => describe(e),
          );
        }
        return i;
      },
      { params: ['i32'], results: ['i32'] },
    );
    ({ sb, inst } = await setup(guest, { next }));
    other = await sb.instantiate(await sb.load(guest.url, { integrity: guest.integrity }), {
      imports: { env: { next: id, mix: noMix, peek: noPeek } },
    });
    out.result = (await inst.call('run', [4])).results[0];
    out.otherCall = await out.otherCall;
    out.load = await out.load;
    out.afterwards = (await other.call('run', [4])).results[0];
    out.verified = (await sb.audit.verify()).ok;
    sb.dispose();
    return out;
  },

  async disposeInside(guest) {
    let inst;
    const next = syncCapability(
      (_m, i) => {
        if (i === 2) inst.dispose();
        return i;
      },
      { params: ['i32'], results: ['i32'] },
    );
    let sb;
    let mod;
    ({ sb, mod, inst } = await setup(guest, { next }, { maxInstances: 2 }));
    const failed = await caught(inst.call('run', [10]));
    const later = await caught(inst.call('run', [1]));
    // The instance was really dropped: two more fit under maxInstances 2.
    const works = (await stillWorks(sb, mod)) && (await stillWorks(sb, mod));
    const events = (await sb.audit.entries()).filter((e) => e.event === 'dispose').length;
    return { failed: failed.error, later: later.error, works, disposeEntries: events };
  },

  async disposeSandboxInside(guest) {
    let sb;
    const next = syncCapability(
      (_m, i) => {
        if (i === 2) sb.dispose();
        return i;
      },
      { params: ['i32'], results: ['i32'] },
    );
    let inst;
    ({ sb, inst } = await setup(guest, { next }));
    const failed = await caught(inst.call('run', [10]));
    return { failed: failed.error, alive: sb.alive };
  },

  async promise(guest) {
    // A syncCapability may still answer with a promise: that call takes the step path.
    const next = syncCapability((_m, i) => (i === 3 ? Promise.resolve(i) : i), { params: ['i32'], results: ['i32'] });
    const rejects = syncCapability((_m, i) => (i === 3 ? Promise.reject(new Error('later')) : i), {
      params: ['i32'],
      results: ['i32'],
    });
    const { sb, inst } = await setup(guest, { next });
    const ok = await inst.call('run', [10]);
    const bad = await setup(guest, { next: rejects });
    const failed = await caught(bad.inst.call('run', [10]));
    sb.dispose();
    bad.sb.dispose();
    return { result: ok.results[0], hostCalls: ok.metrics.hostCalls, failed: failed.error };
  },

  async traced(guest) {
    const { sb, inst } = await setup(guest, {});
    const result = await inst.call('run', [3], { trace: true });
    sb.dispose();
    const spans = result.trace.resourceSpans[0].scopeSpans[0].spans.map((s) => s.name);
    return { result: result.results[0], capabilitySpans: spans.filter((n) => n.startsWith('capability')).length };
  },

  async timeout(guest) {
    const next = syncCapability(
      (_m, i) => {
        const until = performance.now() + 30;
        while (performance.now() < until);
        return i;
      },
      { params: ['i32'], results: ['i32'] },
    );
    const { sb, inst } = await setup(guest, { next });
    const failed = await caught(inst.call('run', [1000], { timeoutMs: 50 }));
    sb.dispose();
    return { failed: failed.error };
  },
};

self.onmessage = async ({ data: { guest, name } }) => {
  try {
    self.postMessage({ ok: true, ...(await cases[name](guest)) });
  } catch (e) {
    self.postMessage({ error: String(e?.stack ?? e) });
  }
};
