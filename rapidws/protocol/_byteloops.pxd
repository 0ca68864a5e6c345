# The compiled build's loops over payload bytes, in C (declarations only; no module).

cdef extern from "_byteloops.h" nogil:
    void rapidws_xor_words(
        unsigned char *out, const unsigned char *src, size_t words, unsigned long long pattern
    )
    void rapidws_xor_words_inplace(unsigned char *buf, size_t words, unsigned long long pattern)
    size_t rapidws_ascii_prefix(const unsigned char *src, size_t n)
