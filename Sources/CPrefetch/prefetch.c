// `kappa_prefetch` is inline (kappa_prefetch.h); `kappa_remap` needs _GNU_SOURCE, which
// Swift's Glibc module does not define.
#define _GNU_SOURCE
#include <stddef.h>
#include "kappa_prefetch.h"
#if defined(__linux__)
#include <sys/mman.h>

void *kappa_remap(void *old, size_t old_size, size_t new_size) {
    void *p = mremap(old, old_size, new_size, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? NULL : p;
}
#endif
