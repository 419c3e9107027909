#ifndef KAPPA_PREFETCH_H
#define KAPPA_PREFETCH_H

/// Asks the CPU to bring the cache line holding `p` closer, without waiting for it: a
/// hint that never faults (any address may be passed). Swift has no prefetch intrinsic,
/// and clang's `_mm_prefetch` is a macro Swift cannot import.
static inline void kappa_prefetch(const void *p) { __builtin_prefetch(p, 1, 3); }

#include <stddef.h>

#if defined(__linux__)
/// Linux's mremap(2) with MREMAP_MAYMOVE: the mapping at `old` grown (or shrunk) to
/// `new_size`, its pages moved rather than copied; NULL on failure (`old` stays valid).
/// For tables that grow (`HugePageMemory`).
void *kappa_remap(void *old, size_t old_size, size_t new_size);
#endif

#endif
