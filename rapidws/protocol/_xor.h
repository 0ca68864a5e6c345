/* XOR with a repeating 8-byte pattern: the compiled engine's masking loop
 * (RFC 6455 5.3), written so that the compiler vectorises it.  With GCC on
 * x86-64 Linux it is also built for AVX2, and the dynamic loader picks the
 * variant the CPU runs (target_clones); elsewhere it is plain C. */
#ifndef RAPIDWS_XOR_H
#define RAPIDWS_XOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && defined(__GNUC__) \
    && !defined(__clang__) && __GNUC__ >= 8
#define RAPIDWS_XOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RAPIDWS_XOR_CLONES
#endif

/* out[0:8 * words] = src[0:8 * words] XOR pattern, a word at a time (any alignment). */
RAPIDWS_XOR_CLONES
static void rapidws_xor_words(unsigned char *restrict out, const unsigned char *restrict src,
                              size_t words, uint64_t pattern)
{
    for (size_t i = 0; i < words; i++) {
        uint64_t v;
        memcpy(&v, src + 8 * i, 8);
        v ^= pattern;
        memcpy(out + 8 * i, &v, 8);
    }
}

#endif
