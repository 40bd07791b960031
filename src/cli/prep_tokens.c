/* prep_tokens — see prep_tokens.h. */
#include "prep_tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "indexed_writer.h"

#define PROGRESS_SECONDS 10.0

void prep_tokens_init(prep_tokens *p, tokenizer *tok, token_dtype dtype, uint64_t share_bytes, int report_progress) {
  memset(p, 0, sizeof *p);
  p->tok = tok, p->dtype = dtype, p->share_bytes = share_bytes, p->report_progress = report_progress;
  p->start = p->last_report = now_seconds();
}

void prep_tokens_free(prep_tokens *p) {
  free(p->bytes);
  free(p->lengths);
  free(p->ids);
  memset(p, 0, sizeof *p);
}

/* Grows *buffer to hold at least `needed` elements; -1 when out of memory. */
static int reserve(void **buffer, uint64_t *capacity, uint64_t needed, size_t element_bytes) {
  if (needed <= *capacity) return 0;
  uint64_t grown = *capacity ? *capacity : 1 << 16;
  while (grown < needed) grown *= 2;
  void *p = realloc(*buffer, grown * element_bytes);
  if (!p) return -1;
  *buffer = p, *capacity = grown;
  return 0;
}

static void store(prep_tokens *p, const int32_t *ids, size_t n) {
  if (p->dtype == TOKEN_DTYPE_I32) {
    memcpy(p->bytes + p->n_bytes, ids, n * sizeof *ids);
  } else {
    uint16_t *out = (uint16_t *)(void *)(p->bytes + p->n_bytes); /* n_bytes stays even */
    for (size_t i = 0; i < n; i++) out[i] = (uint16_t)ids[i]; /* ids < vocab <= 65536: checked up front */
  }
  p->n_bytes += n * (uint64_t)token_dtype_bytes(p->dtype);
}

static void report(prep_tokens *p) {
  const double now = now_seconds();
  if (!p->report_progress || now - p->last_report < PROGRESS_SECONDS) return;
  p->last_report = now;
  printf("prep: rank 0 has tokenized %.1f of its %.1f MB (%.1f MB/s)\n", (double)p->text_bytes / 1e6,
         (double)p->share_bytes / 1e6, (double)p->text_bytes / 1e6 / (now - p->start));
  fflush(stdout);
}

void prep_tokens_add_document(const char *text, size_t n_bytes, void *context) {
  prep_tokens *p = context;
  if (p->status) return; /* the first error is the one reported */
  uint64_t ids_capacity = p->ids_capacity;
  const uint64_t token_bytes = (uint64_t)token_dtype_bytes(p->dtype);
  if (reserve((void **)&p->ids, &ids_capacity, (uint64_t)n_bytes + 1, sizeof *p->ids) != 0 ||
      reserve((void **)&p->lengths, &p->lengths_capacity, p->n_documents + 1, sizeof *p->lengths) != 0 ||
      reserve((void **)&p->bytes, &p->capacity, p->n_bytes + ((uint64_t)n_bytes + 1) * token_bytes, 1) != 0) {
    snprintf(p->err, sizeof p->err, "prep: out of memory for the tokens of %.1f MB of text",
             (double)(p->text_bytes + n_bytes) / 1e6);
    p->status = EXIT_USER_ERROR;
    return;
  }
  p->ids_capacity = (size_t)ids_capacity;
  size_t n = tokenizer_encode(p->tok, text, n_bytes, p->ids); /* never more ids than bytes */
  p->ids[n++] = tokenizer_eot(p->tok);
  if (n > INT32_MAX) {
    snprintf(p->err, sizeof p->err, "prep: a document of %zu tokens exceeds the format's int32 length", n);
    p->status = EXIT_USER_ERROR;
    return;
  }
  store(p, p->ids, n);
  p->lengths[p->n_documents++] = (int32_t)n;
  p->n_tokens += n;
  p->text_bytes += n_bytes;
  report(p);
}
