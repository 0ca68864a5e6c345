# The masking loop of the compiled build, in C (declarations only; no module).

cdef extern from "_xor.h" nogil:
    void rapidws_xor_words(
        unsigned char *out, const unsigned char *src, size_t words, unsigned long long pattern
    )
