/* token_round_trip — the check the tokenizer's tests and tokenize_dump
 * share: whether ids spell a text again, byte for byte (decode(encode(x))
 * == x, invalid UTF-8 included). Header-only: each test program is one .c. */
#ifndef TESSERA_TOKEN_ROUND_TRIP_H
#define TESSERA_TOKEN_ROUND_TRIP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer.h"

/* decode(ids) == text, byte for byte */
static inline int round_trips(const tokenizer *t, const int32_t *ids, size_t n_ids, const char *text, size_t n_bytes) {
  size_t at = 0;
  char scratch[32];
  for (size_t i = 0; i < n_ids; i++) {
    const char *bytes;
    size_t n = tokenizer_token_bytes(t, ids[i], scratch, &bytes);
    if (at + n > n_bytes || memcmp(text + at, bytes, n) != 0) return 0;
    at += n;
  }
  return at == n_bytes;
}

#endif
