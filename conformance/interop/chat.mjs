#!/usr/bin/env node
// Debian's Chromium, headless, as users of the demo chat (rapidws/app, `rapidws serve`).
//
//   node chat.mjs HTTP_URL HTTPS_URL SCREENSHOT [--executable /usr/bin/chromium]
//                 [--timeout SECONDS]
//
// Two pages join room "plain" over HTTP_URL and chat; the server drops them (GET
// /kick: 1012 to every chat connection) and they must rejoin by themselves and
// chat again; two pages join room "tls"
// over HTTPS_URL (a test certificate: errors ignored) and chat. From a page over
// HTTP it then opens /echo: checks that ws.extensions names permessage-deflate and
// that a 4 MiB binary message comes back byte for byte; and opens /closing, which it
// closes with code 4000 and a reason (the test server reports what its handler saw).
// Saves a screenshot of the first page to SCREENSHOT.
//
// Prints one JSON line on stdout: {"ok", "error", "browser", "heard": {...},
// "extensions", "echo_bytes", "closed"} and exits 0 only on success.

import { runInChromium } from './browser.mjs';

function parseArgs(argv) {
  const opts = { urls: [], executable: process.env.RAPIDWS_CHROMIUM || '/usr/bin/chromium', timeout: 120 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--executable') opts.executable = argv[++i];
    else if (argv[i] === '--timeout') opts.timeout = Number(argv[++i]);
    else opts.urls.push(argv[i]);
  }
  if (opts.urls.length !== 3) {
    console.error('usage: node chat.mjs HTTP_URL HTTPS_URL SCREENSHOT');
    process.exit(2);
  }
  return opts;
}

async function joinRoom(context, base, name, room) {
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on('pageerror', (e) => console.error(`chat.mjs: page error: ${e.message}`));
  await page.goto(base + '/');
  await page.evaluate(() => localStorage.clear());
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join button');
  await page.waitForSelector(`#messages li.note:has-text("You joined ${room}")`);
  return page;
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

async function heard(page, name, text) {
  await page.waitForSelector(`#messages li:has(.who:text-is("${name}")):has-text("${text}")`);
  return true;
}

async function chatIn(context, base, room, names) {
  const [a, b] = [await joinRoom(context, base, names[0], room), await joinRoom(context, base, names[1], room)];
  await a.waitForSelector(`#online li:text-is("${names[1]}")`);  // who is online
  await say(a, `hello from ${names[0]}`);
  await say(b, `hi ${names[0]}, ${names[1]} here`);
  const ok = (await heard(b, names[0], `hello from ${names[0]}`))
    && (await heard(a, names[1], `${names[1]} here`));
  return { pages: [a, b], ok };
}

// Runs in the page.
async function echoAndClose({ base }) {
  const ws = (path) => new WebSocket(base.replace(/^http/, 'ws') + path);
  const opened = (w) => new Promise((resolve, reject) => {
    w.onopen = resolve;
    w.onerror = () => reject(new Error('WebSocket error'));
  });
  const echo = ws('/echo');
  echo.binaryType = 'arraybuffer';
  await opened(echo);
  const size = 4 * 1024 * 1024;
  const sent = new Uint8Array(size);
  for (let i = 0; i < size; i++) sent[i] = (i * 2654435761) >>> 24;
  const back = await new Promise((resolve) => {
    echo.onmessage = (e) => resolve(new Uint8Array(e.data));
    echo.send(sent);
  });
  let same = back.length === sent.length;
  for (let i = 0; same && i < size; i++) same = back[i] === sent[i];
  const extensions = echo.extensions;
  echo.close(1000);
  const closing = ws('/closing');
  await opened(closing);
  const closed = await new Promise((resolve) => {
    closing.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    closing.close(4000, 'bye from the browser');
  });
  return { extensions, echo_bytes: same ? size : -1, closed };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const [httpBase, httpsBase, screenshot] = opts.urls;
  const result = { ok: false, error: null, browser: null, heard: {} };
  await runInChromium(opts, result, async (browser) => {
    const plain = await browser.newContext({ viewport: { width: 390, height: 700 } });  // a phone
    const secure = await browser.newContext({ ignoreHTTPSErrors: true });
    const overHttp = await chatIn(plain, httpBase, 'plain', ['alice', 'bob']);
    result.heard.http = overHttp.ok;
    // The server goes away (/kick closes every chat WebSocket with 1012, service
    // restart): the pages reconnect and rejoin by themselves, then chat again.
    const [alice, bob] = overHttp.pages;
    await alice.evaluate(async () => { await fetch('/kick'); });
    for (const page of [alice, bob]) {
      await page.waitForFunction(
        () => document.querySelectorAll('#messages li.note').length >= 2
          && document.getElementById('status').textContent === 'connected'
          && !document.getElementById('text').disabled,
      );
    }
    await bob.waitForSelector('#online li:text-is("alice")');
    await say(alice, 'back again');
    result.heard.rejoined = await heard(bob, 'alice', 'back again');
    const overHttps = await chatIn(secure, httpsBase, 'tls', ['carol', 'dave']);
    result.heard.https = overHttps.ok;
    Object.assign(result, await overHttp.pages[0].evaluate(echoAndClose, { base: httpBase }));
    await overHttp.pages[0].screenshot({ path: screenshot });
    result.ok = Boolean(result.heard.http && result.heard.https && result.heard.rejoined
      && result.echo_bytes > 0);
    return result.ok;
  });
}

main();
