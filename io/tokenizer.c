/* tokenizer — byte-level tokenizer, see tokenizer.h. Encoding is the
 * identity on bytes, so it is lossless for any input, UTF-8 or not. */
#include "tokenizer.h"

#include <stdio.h>
#include <string.h>

size_t tokenizer_encode(const char *text, size_t n_bytes, int32_t *out) {
  for (size_t i = 0; i < n_bytes; i++) out[i] = (unsigned char)text[i];
  return n_bytes;
}

int tokenizer_decode(int32_t id, char out[32]) {
  if (id >= 0 && id < TOKENIZER_N_BYTES) {
    out[0] = (char)id;
    out[1] = '\0';
    return 1;
  }
  if (id == TOKENIZER_EOT) return snprintf(out, 32, "<|endoftext|>");
  return snprintf(out, 32, "<|%d|>", (int)id);
}
