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
