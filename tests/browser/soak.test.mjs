// The soak benchmark (bench/browser/soak.mjs, `make soak`), smaller: rounds of sandboxes —
// each its own dedicated worker and capability — making capability calls concurrently, all
// disposed every round. Memory, measured with performance.measureUserAgentSpecificMemory()
// in a cross-origin-isolated page (and as Chromium's resident set), must come back within
// the soak's bound: the last round ≤ the first × 1.5 + 16 MiB.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bound, mib, problems, runSoak } from '../../bench/browser/soak.mjs';
import { chromiumOnly } from './harness.mjs';

test(
  'soak: 3 rounds × 20 sandboxes × 500 capability calls, memory back within the bound',
  { timeout: 120_000 },
  async (t) => {
    if (
      chromiumOnly(
        t,
        'measures memory with measureUserAgentSpecificMemory and Chromium’s resident set (bench/browser/soak.mjs)',
      )
    )
      return;
    const result = await runSoak({
      sandboxes: 20,
      calls: 500,
      rounds: 3,
      onRound: (i, r) =>
        console.log(
          `round ${i + 1}: page ${mib(r.after.uasm?.page)}, workers during ${mib(r.during?.uasm?.workers)} → after ${mib(r.after.uasm?.workers)}, rss ${mib(r.after.rss)}, calls ${r.callMs.toFixed(0)} ms`,
        ),
    });
    const { baseline, rounds } = result;
    // The measurement is the real one, and it sees the workers: they are there during a round
    // and gone once their sandboxes are disposed.
    assert.equal(baseline.crossOriginIsolated, true);
    assert.equal(baseline.uasmError, undefined, baseline.uasmError);
    for (const r of rounds) {
      assert.equal(r.answered, 20 * 500, 'every capability call was answered');
      assert.ok(r.during.uasm.workers > 1 << 20, `workers measured during the round: ${mib(r.during.uasm.workers)}`);
      assert.ok(r.after.uasm.workers < r.during.uasm.workers / 4, 'and mostly gone after dispose');
    }
    assert.deepEqual(problems(result), []);
    assert.ok(rounds.at(-1).after.uasm.bytes <= bound(rounds[0].after.uasm.bytes));
  },
);
