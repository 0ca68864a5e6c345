#!/usr/bin/env node
// An echo server on Node's `ws`, with permessage-deflate on, for interop tests.
//
//   node ws_server.mjs [--port N] [--server-no-context-takeover]
//                      [--client-no-context-takeover] [--lifetime SECONDS]
//                      [--exit-on-stdin-eof]
//
// Listens on 127.0.0.1 only. --port 0 (the default) picks a free port. The first
// line on stdout is JSON: {"port": N, "perMessageDeflate": {...}}; nothing else
// goes to stdout (logs go to stderr).
// Options may also come from the environment: WS_SERVER_NO_CONTEXT_TAKEOVER=1,
// WS_CLIENT_NO_CONTEXT_TAKEOVER=1.
//
// Every text message is echoed as text and every binary message as binary, except
// the text message "__info__", answered with a JSON text message:
//   {"request": <Sec-WebSocket-Extensions the client sent>,
//    "response": <Sec-WebSocket-Extensions this server answered>,
//    "extensions": <ws.extensions>, "params": <negotiated parameters>,
//    "wire": [{"rx": bytes of the message's frames as read,
//              "tx": bytes of the echo's frames as written,
//              "size": payload size}, ...] (data messages since the last "__info__")}
// The wire sizes are exact as long as the client waits for each echo before it
// sends the next message.
//
// It exits on SIGTERM/SIGINT, after --lifetime seconds (default 900), and, with
// --exit-on-stdin-eof, when its standard input closes.

import { WebSocketServer } from 'ws';

const MAX_PAYLOAD = 32 * 1024 * 1024;

function parseArgs(argv) {
  const opts = {
    port: 0,
    serverNoContextTakeover: process.env.WS_SERVER_NO_CONTEXT_TAKEOVER === '1',
    clientNoContextTakeover: process.env.WS_CLIENT_NO_CONTEXT_TAKEOVER === '1',
    lifetime: 900,
    exitOnStdinEof: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--port') opts.port = Number(argv[++i]);
    else if (arg === '--server-no-context-takeover') opts.serverNoContextTakeover = true;
    else if (arg === '--client-no-context-takeover') opts.clientNoContextTakeover = true;
    else if (arg === '--lifetime') opts.lifetime = Number(argv[++i]);
    else if (arg === '--exit-on-stdin-eof') opts.exitOnStdinEof = true;
    else {
      console.error(`ws_server.mjs: unknown argument ${arg}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    console.error('ws_server.mjs: bad --port');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

const perMessageDeflate = {
  threshold: 0, // compress every message, however small
  // Left undefined when off, so that a client's request for them is accepted.
  serverNoContextTakeover: opts.serverNoContextTakeover || undefined,
  clientNoContextTakeover: opts.clientNoContextTakeover || undefined,
};

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: opts.port,
  perMessageDeflate,
  maxPayload: MAX_PAYLOAD,
});

const responseHeaders = new WeakMap();

wss.on('headers', (headers, req) => {
  const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
  responseHeaders.set(req, line ? line.slice(line.indexOf(':') + 1).trim() : null);
});

wss.on('connection', (ws, req) => {
  const socket = req.socket;
  const request = req.headers['sec-websocket-extensions'] ?? null;
  const response = responseHeaders.get(req) ?? null;
  const deflate = ws._extensions?.['permessage-deflate'];
  let wire = [];
  let lastRead = socket.bytesRead;

  ws.on('message', (data, isBinary) => {
    const rx = socket.bytesRead - lastRead;
    lastRead = socket.bytesRead;
    if (!isBinary && data.length === 8 && data.toString() === '__info__') {
      const info = {
        request,
        response,
        extensions: ws.extensions,
        params: deflate ? deflate.params : null,
        wire,
      };
      wire = [];
      ws.send(JSON.stringify(info));
      return;
    }
    const entry = { size: data.length, rx, tx: null };
    wire.push(entry);
    const before = socket.bytesWritten;
    ws.send(data, { binary: isBinary }, (err) => {
      if (err) console.error(`ws_server.mjs: send failed: ${err.message}`);
      else entry.tx = socket.bytesWritten - before;
    });
  });
  ws.on('error', (err) => console.error(`ws_server.mjs: connection error: ${err.message}`));
});

wss.on('error', (err) => {
  console.error(`ws_server.mjs: ${err.message}`);
  process.exit(1);
});

wss.on('listening', () => {
  const { port } = wss.address();
  process.stdout.write(`${JSON.stringify({ port, perMessageDeflate })}\n`);
});

function shutdown(code) {
  for (const client of wss.clients) client.terminate();
  wss.close();
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
setTimeout(() => {
  console.error(`ws_server.mjs: lifetime of ${opts.lifetime} s is over`);
  shutdown(3);
}, opts.lifetime * 1000).unref();
if (opts.exitOnStdinEof) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}
