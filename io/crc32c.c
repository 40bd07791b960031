/* crc32c — see crc32c.h. */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

/* Every table is built once, by the first caller of any thread. */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes */
static uint32_t table[8][256];

static void build_table(void) {
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int i = 0; i < 8; i++) c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    table[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; b++)
    for (int k = 1; k < 8; k++) table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xFF];
}

/* the raw (un-inverted) CRC register, eight bytes per step */
static uint32_t extend_table(uint32_t c, const unsigned char *p, size_t n) {
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

/* The crc32 instruction takes 3 cycles but starts one per cycle, so one
 * chain of it runs at a third of the instruction's rate. Three independent
 * chains over three adjacent blocks of STREAM_BYTES keep it busy; the
 * chains' registers are then joined: for a block B of n bytes following A,
 * crc(A ++ B) = crc(A) · x^(8n) ⊕ crc0(B) (the CRC register is linear;
 * crc0 starts from 0). Multiplying by x^(8n) mod P is a fixed 32×32 matrix
 * over GF(2), kept as four byte-indexed tables (Mark Adler's crc32c.c,
 * "crc32c_zeros"). 3 × 8 KiB blocks for long runs, 3 × 256 bytes for the
 * rest. About three times the single-chain speed (doc/performance.md). */
#define LONG_BYTES 8192
#define SHORT_BYTES 256
static uint32_t shift_long[4][256], shift_short[4][256];
static int has_sse42;

static uint32_t gf2_times(const uint32_t *matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (; vector; vector >>= 1, matrix++)
    if (vector & 1) sum ^= *matrix;
  return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *matrix) {
  for (int n = 0; n < 32; n++) square[n] = gf2_times(matrix, matrix[n]);
}

/* the tables of "append n_bytes zero bytes" */
static void build_shift(uint32_t shift[4][256], size_t n_bytes) {
  uint32_t odd[32], even[32];
  odd[0] = CRC32C_POLY; /* one zero bit */
  for (int n = 1; n < 32; n++) odd[n] = 1u << (n - 1);
  gf2_square(even, odd); /* two bits */
  gf2_square(odd, even); /* four bits */
  const uint32_t *op = odd;
  /* square on: 8 bits (one byte), 2 bytes, 4 bytes, ... while halving n_bytes;
   * n_bytes is a power of two, so the last square is the operator */
  for (;;) {
    gf2_square(even, odd);
    op = even;
    n_bytes >>= 1;
    if (!n_bytes) break;
    gf2_square(odd, even);
    op = odd;
    n_bytes >>= 1;
    if (!n_bytes) break;
  }
  for (uint32_t b = 0; b < 256; b++)
    for (int k = 0; k < 4; k++) shift[k][b] = gf2_times(op, b << (8 * k));
}

static void build_tables(void) {
  build_table();
  has_sse42 = __builtin_cpu_supports("sse4.2");
  build_shift(shift_long, LONG_BYTES);
  build_shift(shift_short, SHORT_BYTES);
}

static uint32_t apply_shift(uint32_t shift[4][256], uint32_t c) {
  return shift[0][c & 0xFF] ^ shift[1][(c >> 8) & 0xFF] ^ shift[2][(c >> 16) & 0xFF] ^ shift[3][c >> 24];
}

/* three chains over [p, p + 3·block): the register after all of it */
__attribute__((target("sse4.2"))) static uint64_t three_chains(uint64_t c0, const unsigned char *p,
                                                               size_t block, uint32_t shift[4][256]) {
  uint64_t c1 = 0, c2 = 0;
  for (const unsigned char *end = p + block; p < end; p += 8) {
    uint64_t w0, w1, w2;
    memcpy(&w0, p, 8);
    memcpy(&w1, p + block, 8);
    memcpy(&w2, p + 2 * block, 8);
    c0 = _mm_crc32_u64(c0, w0);
    c1 = _mm_crc32_u64(c1, w1);
    c2 = _mm_crc32_u64(c2, w2);
  }
  c0 = apply_shift(shift, (uint32_t)c0) ^ (uint32_t)c1;
  return apply_shift(shift, (uint32_t)c0) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t extend_sse42(uint32_t c, const unsigned char *p, size_t n) {
  uint64_t c64 = c;
  for (; n >= 3 * LONG_BYTES; p += 3 * LONG_BYTES, n -= 3 * LONG_BYTES)
    c64 = three_chains(c64, p, LONG_BYTES, shift_long);
  for (; n >= 3 * SHORT_BYTES; p += 3 * SHORT_BYTES, n -= 3 * SHORT_BYTES)
    c64 = three_chains(c64, p, SHORT_BYTES, shift_short);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c64 = _mm_crc32_u64(c64, word);
  }
  c = (uint32_t)c64;
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}

static uint32_t extend_raw(uint32_t c, const unsigned char *p, size_t n) {
  pthread_once(&tables_once, build_tables);
  return has_sse42 ? extend_sse42(c, p, n) : extend_table(c, p, n);
}
#else
static uint32_t extend_raw(uint32_t c, const unsigned char *p, size_t n) {
  pthread_once(&tables_once, build_table);
  return extend_table(c, p, n);
}
#endif

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n) {
  return ~extend_raw(~crc, data, n);
}

uint32_t crc32c(const void *data, size_t n) { return crc32c_extend(0, data, n); }
