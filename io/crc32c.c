/* crc32c — see crc32c.h. */
#include "crc32c.h"

#include <string.h>

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

/* slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes */
static uint32_t table[8][256];
static int table_ready;

static void build_table(void) {
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int i = 0; i < 8; i++) c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    table[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; b++)
    for (int k = 1; k < 8; k++) table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xFF];
  table_ready = 1;
}

/* the raw (un-inverted) CRC register, eight bytes per step */
static uint32_t extend_table(uint32_t c, const unsigned char *p, size_t n) {
  if (!table_ready) build_table();
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    word ^= c; /* little-endian: the register meets the first four bytes */
    c = table[7][word & 0xFF] ^ table[6][(word >> 8) & 0xFF] ^ table[5][(word >> 16) & 0xFF] ^
        table[4][(word >> 24) & 0xFF] ^ table[3][(word >> 32) & 0xFF] ^ table[2][(word >> 40) & 0xFF] ^
        table[1][(word >> 48) & 0xFF] ^ table[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ table[0][(c ^ *p++) & 0xFF];
  return c;
}

#if defined(__x86_64__) && defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t extend_sse42(uint32_t c, const unsigned char *p, size_t n) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c64 = _mm_crc32_u64(c64, word);
    p += 8;
    n -= 8;
  }
  c = (uint32_t)c64;
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}

static uint32_t extend_raw(uint32_t c, const unsigned char *p, size_t n) {
  static int has_sse42 = -1;
  if (has_sse42 < 0) has_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
  return has_sse42 ? extend_sse42(c, p, n) : extend_table(c, p, n);
}
#else
static uint32_t extend_raw(uint32_t c, const unsigned char *p, size_t n) { return extend_table(c, p, n); }
#endif

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n) {
  return ~extend_raw(~crc, data, n);
}

uint32_t crc32c(const void *data, size_t n) { return crc32c_extend(0, data, n); }
