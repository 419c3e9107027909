#ifndef KAPPA_CRC32C_H
#define KAPPA_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as Kafka's RecordBatch v2 uses.
/// `crc` is the running value from a previous call, 0 to start; the result is final
/// (pre- and post-inverted), so crc32c(crc32c(0, a), b) == crc32c(0, a ++ b).
/// Uses the SSE 4.2 / ARMv8 CRC instruction when the CPU has it, else slicing-by-8.
uint32_t kappa_crc32c(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use (reported by benchmarks).
int kappa_crc32c_hardware(void);

#endif
