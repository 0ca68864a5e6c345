// Debian's Chromium through playwright-core (never a browser download), for the
// interop scripts chromium.mjs and chat.mjs.

import { chromium } from 'playwright-core';

// Headless, no sandbox (CI runs as root), nothing that reaches the network.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

// Launch the Chromium at `executable`, headless.
export function launchChromium(executable) {
  return chromium.launch({ executablePath: executable, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
}

// Close `browser` (if any), waiting 10 s at most.
export async function closeBrowser(browser) {
  if (browser) await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10000))]);
}

// The skeleton of an interop script: launch Chromium, run `body(browser)`, which
// fills `result` (an object with `ok`, `error` and `browser`) and returns true on
// success; print `result` as one JSON line and exit 0 on success, 1 on failure
// (the error in `result.error`), 4 past `timeout` seconds. `cleanup` runs after
// the browser closed.
export async function runInChromium({ executable, timeout }, result, body, cleanup = () => {}) {
  let browser = null;
  let exitCode = 1;
  const deadline = setTimeout(() => {
    result.error = `timed out after ${timeout} s`;
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(4));
  }, timeout * 1000);
  try {
    browser = await launchChromium(executable);
    result.browser = browser.version();
    if (await body(browser)) exitCode = 0;
  } catch (err) {
    result.error = err && err.message ? err.message : String(err);
  } finally {
    await closeBrowser(browser);
    cleanup();
    clearTimeout(deadline);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(exitCode));
}
