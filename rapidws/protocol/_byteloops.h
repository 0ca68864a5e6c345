/* The compiled engine's loops over payload bytes, in C so that the compiler
 * vectorises or unrolls them: masking (RFC 6455 5.3) and the ASCII scan of
 * UTF-8 validation.  With GCC on x86-64 Linux they are also built for AVX2,
 * and the dynamic loader picks the variant the CPU runs (target_clones);
 * elsewhere they are plain C. */
#ifndef RAPIDWS_BYTELOOPS_H
#define RAPIDWS_BYTELOOPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && defined(__GNUC__) \
    && !defined(__clang__) && __GNUC__ >= 8
#define RAPIDWS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RAPIDWS_CLONES
#endif

#define RAPIDWS_HIGH_BITS 0x8080808080808080ULL

/* out[0:8 * words] = src[0:8 * words] XOR pattern, a word at a time (any alignment).
 * Blocks of 16 words first: the compiler turns each block into four 32-byte
 * XORs with no loop test between them, so a large frame costs about three
 * instructions per 32 bytes instead of five (one counter, compare and branch
 * per block, not per vector). */
RAPIDWS_CLONES
static void rapidws_xor_words(unsigned char *restrict out, const unsigned char *restrict src,
                              size_t words, uint64_t pattern)
{
    size_t blocks = words / 16;
    for (size_t b = 0; b < blocks; b++) {
        const unsigned char *s = src + 128 * b;
        unsigned char *o = out + 128 * b;
        for (size_t j = 0; j < 16; j++) {
            uint64_t v;
            memcpy(&v, s + 8 * j, 8);
            v ^= pattern;
            memcpy(o + 8 * j, &v, 8);
        }
    }
    for (size_t i = 16 * blocks; i < words; i++) {
        uint64_t v;
        memcpy(&v, src + 8 * i, 8);
        v ^= pattern;
        memcpy(out + 8 * i, &v, 8);
    }
}

/* buf[0:8 * words] ^= pattern, in place (a frame read straight into its buffer). */
RAPIDWS_CLONES
static void rapidws_xor_words_inplace(unsigned char *buf, size_t words, uint64_t pattern)
{
    size_t blocks = words / 16;
    for (size_t b = 0; b < blocks; b++) {
        unsigned char *p = buf + 128 * b;
        for (size_t j = 0; j < 16; j++) {
            uint64_t v;
            memcpy(&v, p + 8 * j, 8);
            v ^= pattern;
            memcpy(p + 8 * j, &v, 8);
        }
    }
    for (size_t i = 16 * blocks; i < words; i++) {
        uint64_t v;
        memcpy(&v, buf + 8 * i, 8);
        v ^= pattern;
        memcpy(buf + 8 * i, &v, 8);
    }
}

/* How many bytes src[0:n] starts with that are ASCII (below 0x80). */
RAPIDWS_CLONES
static size_t rapidws_ascii_prefix(const unsigned char *src, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        memcpy(&c, src + i + 16, 8);
        memcpy(&d, src + i + 24, 8);
        if ((a | b | c | d) & RAPIDWS_HIGH_BITS)
            break;
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t a;
        memcpy(&a, src + i, 8);
        if (a & RAPIDWS_HIGH_BITS)
            break;
    }
    while (i < n && src[i] < 0x80)
        i++;
    return i;
}

#endif
