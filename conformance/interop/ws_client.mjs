#!/usr/bin/env node
// A Node `ws` client with permessage-deflate on, running a scripted exchange
// against an echo server (rapidws in the interop tests) and checking every echo
// byte for byte.
//
//   node ws_client.mjs URL [--client-no-context-takeover]
//                          [--server-no-context-takeover]
//                          [--server-fragments] [--timeout SECONDS]
//
// --client-no-context-takeover / --server-no-context-takeover add these
// parameters to the permessage-deflate offer.  --server-fragments also asks the
// server for fragmented messages with the text messages "__fragmented_text__"
// and "__fragmented_binary__" (the rapidws test server answers them; see
// payloads.mjs for the contents).
//
// Prints one JSON line on stdout:
//   {"ok": bool, "error": str|null, "extensions": ws.extensions,
//    "response": the Sec-WebSocket-Extensions response header,
//    "params": negotiated parameters, "steps": [{"name", "binary", "size",
//    "ms", "tx": bytes written for the message, "rx": bytes read for the echo}],
//    "close": {"code", "reason"}}
// and exits 0 only if the handshake negotiated permessage-deflate, every echo
// matched, and the closing handshake completed with 1000.

import WebSocket from 'ws';
import {
  concat,
  firstDifference,
  fragmentedBinary,
  fragmentedText,
  mixedBytes,
  randomBytes,
  textBytes,
} from './payloads.mjs';

const MAX_PAYLOAD = 32 * 1024 * 1024;
const MiB = 1024 * 1024;

function parseArgs(argv) {
  const opts = {
    url: null,
    clientNoContextTakeover: false,
    serverNoContextTakeover: false,
    serverFragments: false,
    timeout: 120,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--client-no-context-takeover') opts.clientNoContextTakeover = true;
    else if (arg === '--server-no-context-takeover') opts.serverNoContextTakeover = true;
    else if (arg === '--server-fragments') opts.serverFragments = true;
    else if (arg === '--timeout') opts.timeout = Number(argv[++i]);
    else if (!arg.startsWith('--') && opts.url === null) opts.url = arg;
    else {
      console.error(`ws_client.mjs: unknown argument ${arg}`);
      process.exit(2);
    }
  }
  if (!opts.url || !(opts.timeout > 0)) {
    console.error('usage: node ws_client.mjs ws://127.0.0.1:PORT/ [options]');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const result = {
  ok: false,
  error: null,
  url: opts.url,
  offer: {
    clientNoContextTakeover: opts.clientNoContextTakeover,
    serverNoContextTakeover: opts.serverNoContextTakeover,
  },
  extensions: null,
  response: null,
  params: null,
  steps: [],
  close: null,
};

function finish(code) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
}

const deadline = setTimeout(() => {
  result.error = `timed out after ${opts.timeout} s`;
  finish(4);
}, opts.timeout * 1000);

const buf = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.length);
const utf8 = (s) => new TextEncoder().encode(s);

// A message: [fragments] with binary true/false; the expected echo is their
// concatenation, of the same type, or `reply` (of type `replyBinary`).
function message(name, binary, fragments, { reply = null, replyBinary = binary } = {}) {
  return { name, binary, fragments, reply, replyBinary };
}

function steps() {
  const repeated = randomBytes(1000, 77);
  const list = [
    message('text', false, [utf8('Hello, rapidws!')]),
    message('text-unicode', false, [utf8('héllo wörld € 😀 ✓ ключ 日本語 '.repeat(8))]),
    message('text-empty', false, [new Uint8Array(0)]),
    message('binary', true, [new Uint8Array(256).map((_, i) => i)]),
    message('binary-empty', true, [new Uint8Array(0)]),
    message('binary-125', true, [randomBytes(125, 1)]),
    message('binary-126', true, [randomBytes(126, 2)]),
    message('binary-65535', true, [mixedBytes(65535, 3)]),
    message('binary-65536', true, [mixedBytes(65536, 4)]),
    // Fragmented with ws.send(chunk, {fin: false}); the text one splits 'ö'
    // between two fragments and has an empty fragment.
    message('fragmented-text', false, (() => {
      const all = utf8('Hello, wörld! ' + 'ab'.repeat(600));
      const cut = 9; // inside the two bytes of 'ö'
      return [all.subarray(0, cut), new Uint8Array(0), all.subarray(cut, 20), all.subarray(20)];
    })()),
    message('fragmented-binary', true, [randomBytes(1000, 5), textBytes(70000, 6), randomBytes(1, 7)]),
    // The same incompressible message twice: with context takeover the second
    // one compresses to a few bytes (the tests compare the wire sizes).
    message('repeat-1', true, [repeated]),
    message('repeat-2', true, [repeated]),
    message('text-1MiB', false, [textBytes(MiB, 8)]),
    message('binary-1MiB', true, [randomBytes(MiB, 9)]),
    message('binary-16MiB', true, [mixedBytes(16 * MiB, 10)]),
    message('text-16MiB', false, [textBytes(16 * MiB, 11)]),
  ];
  if (opts.serverFragments) {
    list.push(
      message('server-fragmented-text', false, [utf8('__fragmented_text__')], {
        reply: concat(fragmentedText()),
      }),
      message('server-fragmented-binary', false, [utf8('__fragmented_binary__')], {
        reply: concat(fragmentedBinary()),
        replyBinary: true,
      }),
    );
  }
  return list;
}

// Received messages, in order, and waiters for them.
const inbox = [];
let waiter = null;

function nextMessage(ws) {
  if (inbox.length) return Promise.resolve(inbox.shift());
  return new Promise((resolve, reject) => {
    const onClose = (code) => reject(new Error(`connection closed (${code}) while waiting`));
    ws.once('close', onClose);
    waiter = (msg) => {
      ws.off('close', onClose);
      resolve(msg);
    };
  });
}

function sendChunk(ws, data, options) {
  return new Promise((resolve, reject) => {
    ws.send(buf(data), options, (err) => (err ? reject(err) : resolve()));
  });
}

async function run() {
  const ws = new WebSocket(opts.url, {
    perMessageDeflate: {
      threshold: 0,
      clientNoContextTakeover: opts.clientNoContextTakeover || undefined,
      serverNoContextTakeover: opts.serverNoContextTakeover || undefined,
    },
    maxPayload: MAX_PAYLOAD,
    handshakeTimeout: 10000,
  });
  ws.on('upgrade', (res) => {
    result.response = res.headers['sec-websocket-extensions'] ?? null;
  });
  ws.on('message', (data, isBinary) => {
    const msg = { data, isBinary };
    if (waiter) {
      const w = waiter;
      waiter = null;
      w(msg);
    } else {
      inbox.push(msg);
    }
  });
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.on('error', (err) => {
    result.error ??= `error: ${err.message}`;
  });

  result.extensions = ws.extensions;
  result.params = ws._extensions['permessage-deflate']?.params ?? null;
  if (!ws.extensions.split(',').includes('permessage-deflate')) {
    throw new Error(`permessage-deflate was not negotiated (response: ${result.response})`);
  }

  const socket = ws._socket;
  for (const step of steps()) {
    const expected = step.reply ?? concat(step.fragments);
    const size = step.fragments.reduce((n, f) => n + f.length, 0);
    const t0 = performance.now();
    const written = socket.bytesWritten;
    const read = socket.bytesRead;
    const last = step.fragments.length - 1;
    for (let i = 0; i <= last; i++) {
      await sendChunk(ws, step.fragments[i], { binary: step.binary, fin: i === last });
    }
    const tx = socket.bytesWritten - written;
    const echo = await nextMessage(ws);
    const rx = socket.bytesRead - read;
    const ms = Math.round(performance.now() - t0);
    result.steps.push({ name: step.name, binary: step.binary, size, ms, tx, rx });
    if (echo.isBinary !== step.replyBinary) {
      throw new Error(`${step.name}: got a ${echo.isBinary ? 'binary' : 'text'} message back`);
    }
    const diff = firstDifference(echo.data, expected);
    if (diff !== -1) {
      throw new Error(
        `${step.name}: echo differs at byte ${diff} (got ${echo.data.length} bytes, ` +
          `expected ${expected.length})`,
      );
    }
  }

  ws.close(1000, 'done');
  result.close = await closed;
  if (result.close.code !== 1000) {
    throw new Error(`closed with ${result.close.code} ${result.close.reason}`);
  }
  if (result.error) throw new Error(result.error);
}

run().then(
  () => {
    clearTimeout(deadline);
    result.ok = true;
    finish(0);
  },
  (err) => {
    clearTimeout(deadline);
    result.error = err && err.message ? err.message : String(err);
    finish(1);
  },
);
