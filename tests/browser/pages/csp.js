// The script of the CSP test pages (csp-blocked.html, csp-allowed.html): an external module,
// since their policies forbid inline scripts. `window.runWith(workerUrl, fixture)` creates a
// sandbox with that worker URL and calls the fixture's `answer`, or describes the error.
try {
  const nb = await import('/pkg/index.js');
  window.runWith = async (workerUrl, fixture) => {
    try {
      const sb = await nb.createSandbox({ workerUrl });
      try {
        const mod = await sb.load(fixture.url, { integrity: fixture.integrity });
        const inst = await sb.instantiate(mod);
        return { results: (await inst.call('answer')).results };
      } finally {
        sb.dispose();
      }
    } catch (e) {
      return {
        name: e.name,
        code: e.code,
        message: e.message,
        isSandboxError: e instanceof nb.SandboxError,
        cause:
          e.cause instanceof Error
            ? `${e.cause.name}: ${e.cause.message}`
            : e.cause instanceof SecurityPolicyViolationEvent
              ? `${e.cause.type}: ${e.cause.effectiveDirective}`
              : e.cause === undefined
                ? undefined
                : String(e.cause),
      };
    }
  };
  window.ready = true;
} catch (e) {
  window.loadError = String(e);
}
