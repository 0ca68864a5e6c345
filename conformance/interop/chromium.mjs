#!/usr/bin/env node
// Debian's Chromium, headless, as a WebSocket client of an echo server (rapidws
// in the interop tests), with the browser's own permessage-deflate.
//
//   node chromium.mjs URL [--executable /usr/bin/chromium] [--server-fragments]
//                         [--timeout SECONDS]
//
// Launches the given Chromium through playwright-core (never a browser download),
// opens a tiny page served from 127.0.0.1 (a page on about:blank may not reach
// loopback addresses: Chromium's Local Network Access checks) and there runs
// `new WebSocket(URL)`: checks that
// `ws.extensions` names permessage-deflate, then sends text and binary
// (ArrayBuffer) messages of 0, 1, 125, 126, 65536, 1 MiB and 16 MiB bytes with
// deterministic contents (payloads.mjs), the same message twice in a row (context
// takeover), and compares each echo byte for byte. --server-fragments also sends
// "__fragmented_text__" and "__fragmented_binary__", which the rapidws test server
// answers with fragmented messages. Ends with a 1000 close.
//
// Prints one JSON line on stdout: {"ok", "error", "browser", "extensions",
// "steps": [{"name", "binary", "size", "ms"}], "close": {"code", "reason",
// "wasClean"}} and exits 0 only on success.

import http from 'node:http';
import { runInChromium } from './browser.mjs';
import * as payloads from './payloads.mjs';

const SIZES = [0, 1, 125, 126, 65536, 1024 * 1024, 16 * 1024 * 1024];

function parseArgs(argv) {
  const opts = {
    url: null,
    executable: process.env.RAPIDWS_CHROMIUM || '/usr/bin/chromium',
    serverFragments: false,
    timeout: 180,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--executable') opts.executable = argv[++i];
    else if (arg === '--server-fragments') opts.serverFragments = true;
    else if (arg === '--timeout') opts.timeout = Number(argv[++i]);
    else if (!arg.startsWith('--') && opts.url === null) opts.url = arg;
    else {
      console.error(`chromium.mjs: unknown argument ${arg}`);
      process.exit(2);
    }
  }
  if (!opts.url || !(opts.timeout > 0)) {
    console.error('usage: node chromium.mjs ws://127.0.0.1:PORT/ [options]');
    process.exit(2);
  }
  return opts;
}

// Runs in the page. Returns a result object; never throws.
async function exchange({ url, sizes, serverFragments, stepTimeoutMs }) {
  const result = { extensions: null, steps: [], close: null, error: null };
  const inbox = [];
  let waiter = null;
  let closeInfo = null;
  let ws = null;

  const withTimeout = (promise, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), stepTimeoutMs);
      promise.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });

  const next = (what) =>
    withTimeout(
      new Promise((resolve, reject) => {
        if (inbox.length) resolve(inbox.shift());
        else if (closeInfo) reject(new Error(`closed (${closeInfo.code}) before ${what}`));
        else waiter = { resolve, reject };
      }),
      what,
    );

  try {
    ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => {
      if (waiter) {
        const w = waiter;
        waiter = null;
        w.resolve(e.data);
      } else {
        inbox.push(e.data);
      }
    };
    const closed = new Promise((resolve) => {
      ws.onclose = (e) => {
        closeInfo = { code: e.code, reason: e.reason, wasClean: e.wasClean };
        if (waiter) waiter.reject(new Error(`closed (${e.code} ${e.reason})`));
        resolve(closeInfo);
      };
    });
    await withTimeout(
      new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error('WebSocket error before open'));
      }),
      'opening handshake',
    );
    ws.onerror = null;
    result.extensions = ws.extensions;
    if (!/(^|,)\s*permessage-deflate\b/.test(ws.extensions)) {
      throw new Error(`permessage-deflate not negotiated: extensions=${JSON.stringify(ws.extensions)}`);
    }

    const encoder = new TextEncoder();
    const decoder = new TextDecoder('utf-8', { fatal: true });

    const check = async (name, binary, bytes, send) => {
      const t0 = performance.now();
      ws.send(send);
      const echo = await next(name);
      const ms = Math.round(performance.now() - t0);
      if (binary !== (echo instanceof ArrayBuffer)) {
        throw new Error(`${name}: got a ${binary ? 'text' : 'binary'} message back`);
      }
      const got = binary ? new Uint8Array(echo) : encoder.encode(echo);
      const diff = firstDifference(got, bytes);
      if (diff !== -1) {
        throw new Error(
          `${name}: echo differs at byte ${diff} (got ${got.length}, expected ${bytes.length})`,
        );
      }
      result.steps.push({ name, binary, size: bytes.length, ms });
    };

    let seed = 1000;
    for (const size of sizes) {
      {
        const bytes = textBytes(size, ++seed);
        await check(`text-${size}`, false, bytes, decoder.decode(bytes));
      }
      {
        const bytes = mixedBytes(size, ++seed);
        await check(`binary-${size}`, true, bytes, bytes);
      }
    }
    const repeated = randomBytes(1000, 42);
    await check('repeat-binary-1', true, repeated, repeated);
    await check('repeat-binary-2', true, repeated, repeated);
    const repeatedText = textBytes(1000, 43);
    await check('repeat-text-1', false, repeatedText, decoder.decode(repeatedText));
    await check('repeat-text-2', false, repeatedText, decoder.decode(repeatedText));
    if (serverFragments) {
      const t0 = performance.now();
      ws.send('__fragmented_text__');
      const text = await next('__fragmented_text__');
      const textBytesGot = typeof text === 'string' ? encoder.encode(text) : null;
      const textWant = concat(fragmentedText());
      if (textBytesGot === null || firstDifference(textBytesGot, textWant) !== -1) {
        throw new Error('server-fragmented-text: wrong message');
      }
      result.steps.push({
        name: 'server-fragmented-text',
        binary: false,
        size: textWant.length,
        ms: Math.round(performance.now() - t0),
      });
      const t1 = performance.now();
      ws.send('__fragmented_binary__');
      const bin = await next('__fragmented_binary__');
      const binWant = concat(fragmentedBinary());
      if (!(bin instanceof ArrayBuffer) || firstDifference(new Uint8Array(bin), binWant) !== -1) {
        throw new Error('server-fragmented-binary: wrong message');
      }
      result.steps.push({
        name: 'server-fragmented-binary',
        binary: true,
        size: binWant.length,
        ms: Math.round(performance.now() - t1),
      });
    }
    ws.close(1000, 'done');
    result.close = await withTimeout(closed, 'closing handshake');
    if (result.close.code !== 1000 || !result.close.wasClean) {
      throw new Error(`closed with ${JSON.stringify(result.close)}`);
    }
  } catch (err) {
    result.error = err && err.message ? err.message : String(err);
    if (closeInfo) result.close = closeInfo;
    try {
      ws?.close();
    } catch {
      // already closing
    }
  }
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const result = { ok: false, error: null, url: opts.url, browser: null, extensions: null };
  let pageServer = null;
  await runInChromium(opts, result, async (browser) => {
    const page = await browser.newPage();
    page.setDefaultTimeout(30000);
    page.on('console', (m) => console.error(`chromium.mjs: console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => console.error(`chromium.mjs: page error: ${e.message}`));
    page.on('websocket', (w) => {
      w.on('socketerror', (e) => console.error(`chromium.mjs: WebSocket error: ${e}`));
    });
    pageServer = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><title>rapidws interop</title>');
    });
    await new Promise((resolve, reject) => {
      pageServer.once('error', reject);
      pageServer.listen(0, '127.0.0.1', resolve);
    });
    await page.goto(`http://127.0.0.1:${pageServer.address().port}/`);
    const helpers = [
      payloads.randomBytes,
      payloads.textBytes,
      payloads.mixedBytes,
      payloads.concat,
      payloads.firstDifference,
      payloads.fragmentedText,
      payloads.fragmentedBinary,
    ];
    await page.addScriptTag({ content: helpers.map(String).join('\n') });
    const pageResult = await page.evaluate(exchange, {
      url: opts.url,
      sizes: SIZES,
      serverFragments: opts.serverFragments,
      stepTimeoutMs: 60000,
    });
    Object.assign(result, pageResult);
    result.ok = !result.error;
    return result.ok;
  }, () => pageServer?.close());
}

main();
