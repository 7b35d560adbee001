// Debian's Chromium, headless, driven by playwright-core — never a downloaded browser. The
// flags are the browser tests' (tests/browser/harness.mjs): without the background-networking
// ones Chromium keeps trying to reach Google's hosts, which a closed network refuses.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches Chromium with a throwaway profile (`extraArgs`: more flags). Returns `{ context,
 * page, version, messages, userDataDir, close }`; `messages` collects the page's console
 * errors and uncaught exceptions.
 */
export async function launchChromium({ extraArgs = [] } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'nestbox-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
    });
  } catch (error) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw new Error(`could not start ${CHROMIUM} (make setup-web installs it): ${error.message}`);
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const messages = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') messages.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => messages.push(`uncaught: ${e.message}`));
  // A persistent context has no Browser object to ask; the user agent says the version.
  const agent = await page.evaluate(() => navigator.userAgent);
  const version = /Chrome\/([\d.]+)/.exec(agent)?.[1] ?? agent;
  return {
    context,
    page,
    version,
    messages,
    userDataDir,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
