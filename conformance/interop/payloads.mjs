// Deterministic message contents, shared by ws_client.mjs and chromium.mjs.
//
// Each function is self-contained (Uint8Array and TextEncoder only, no imports,
// no Buffer), so that chromium.mjs can also install its source in a page.

// `n` pseudo-random bytes (xorshift32 from `seed`): incompressible.
export function randomBytes(n, seed) {
  const out = new Uint8Array(n);
  let x = (seed | 0) || 0x9e3779b9;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
    out[i + 1] = (x >>> 8) & 0xff;
    out[i + 2] = (x >>> 16) & 0xff;
    out[i + 3] = (x >>> 24) & 0xff;
  }
  for (; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

// Exactly `n` bytes of valid UTF-8 text: words (some of them with 2-, 3- and
// 4-byte characters) picked pseudo-randomly from a small vocabulary, padded with
// ASCII to the exact size. Compressible, like real text.
export function textBytes(n, seed) {
  const words = [
    'the ', 'quick ', 'brown ', 'fox ', 'jumps ', 'over ', 'lazy ', 'dog ',
    'WebSocket ', 'frame ', 'deflate ', 'rapidws ', 'héllo ', 'wörld ',
    'naïve ', 'façade ', '€uro ', 'ключ ', '日本語 ', '😀 ', '✓ ', '\n',
  ].map((w) => new TextEncoder().encode(w));
  const out = new Uint8Array(n);
  let x = (seed | 0) || 0x2545f491;
  let i = 0;
  for (;;) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const w = words[(x >>> 0) % words.length];
    if (i + w.length > n) break;
    out.set(w, i);
    i += w.length;
  }
  out.fill(0x78, i); // 'x'
  return out;
}

// `n` bytes alternating 4 KiB of random bytes and 4 KiB of a repeated pattern:
// partly compressible.
export function mixedBytes(n, seed) {
  const out = randomBytes(n, seed);
  for (let block = 4096; block < n; block += 8192) {
    const end = Math.min(block + 4096, n);
    for (let i = block; i < end; i++) out[i] = (i * 7) & 0xff;
  }
  return out;
}

// What rapidws test servers send, fragmented, when asked with these text messages.
export const FRAGMENTED_REQUESTS = {
  __fragmented_text__: { binary: false, fragments: () => fragmentedText() },
  __fragmented_binary__: { binary: true, fragments: () => fragmentedBinary() },
};

export function fragmentedText() {
  return ['Hello, ', '', 'wörld', '!'.repeat(1000)].map((s) => new TextEncoder().encode(s));
}

export function fragmentedBinary() {
  const ramp = new Uint8Array(256).map((_, i) => i);
  const long = new Uint8Array(256 * 300).map((_, i) => i & 0xff);
  return [ramp, new Uint8Array(0), long];
}

export function concat(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

// Index of the first difference between two byte arrays, or -1 if they are equal.
export function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
