// CRC-32C. Hand-written because it is ~60 lines and no Debian package ships a maintained
// C library for it; the hardware instruction runs at several GB/s, far above LZ4.
#include "crc32c.h"
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
// Built once at load time, before any thread can call in.
__attribute__((constructor))
static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][n] = c;
        }
    }
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}
static int have_hw(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__)
#include <sys/auxv.h>
#include <asm/hwcap.h>
__attribute__((target("crc")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        crc = __builtin_aarch64_crc32cx(crc, w);
        p += 8;
        n -= 8;
    }
    while (n--) crc = __builtin_aarch64_crc32cb(crc, *p++);
    return crc;
}
static int have_hw(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#else
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n) { return crc_sw(crc, p, n); }
static int have_hw(void) { return 0; }
#endif

static int hw_state = -1; // -1 unknown, 0 no, 1 yes; a benign race: every thread computes the same value.

int kappa_crc32c_hardware(void) {
    if (hw_state < 0) hw_state = have_hw() ? 1 : 0;
    return hw_state;
}

uint32_t kappa_crc32c(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = (const unsigned char *)data;
    crc = ~crc;
    crc = kappa_crc32c_hardware() ? crc_hw(crc, p, length) : crc_sw(crc, p, length);
    return ~crc;
}
