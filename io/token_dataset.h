/* token_dataset — read-only, memory-mapped token streams.
 *
 * Two on-disk formats are understood (doc/data-format.md specifies both):
 *   - Megatron-LM's indexed dataset: PREFIX.idx (header "MMIDIDX\0\0", version 1,
 *     dtype code, sequence lengths/pointers, document index) + PREFIX.bin (raw
 *     tokens). uint16 and int32 tokens are accepted (what `tessera prep` and
 *     Megatron's preprocess_data.py write).
 *   - llm.c token shards: one FILE.bin with a 256×int32 header (magic 20240520,
 *     version 1, token count) followed by uint16 tokens.
 * dataset_open(path) accepts a Megatron PREFIX (PREFIX.idx and PREFIX.bin exist)
 * or an llm.c file path.
 *
 * The stream is cut into windows of T+1 tokens starting every T tokens
 * (inputs are tokens [w·T, w·T+T), targets are shifted by one), the GPT
 * pretraining convention; document boundaries are marked by the end-of-text
 * token inside the stream, as Megatron's GPTDataset does.
 *
 * Errors are returned, not raised: every rank opens the same files, so the
 * caller can report once for all (fail_collective).
 */
#ifndef TESSERA_TOKEN_DATASET_H
#define TESSERA_TOKEN_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "fail.h"

typedef enum token_format { TOKEN_FORMAT_MEGATRON, TOKEN_FORMAT_LLMC } token_format;
typedef enum token_dtype { TOKEN_DTYPE_U16, TOKEN_DTYPE_I32 } token_dtype;

typedef struct token_dataset {
  char path[PATH_BYTES];    /* what the user named (prefix or file) */
  token_format format;
  token_dtype dtype;
  const void *tokens;       /* first token, inside the mapping */
  uint64_t n_tokens;
  uint64_t n_documents;     /* Megatron: documents in the index; llm.c: 0 (unknown) */
  void *mappings[2];        /* mmap'd regions (bin, idx) for dataset_close */
  size_t mapping_bytes[2];
  /* the file behind mapping 0 as it was mapped: truncating it later would make
   * reading the mapping raise SIGBUS, so the trainer compares before reading */
  char tokens_path[JOINED_PATH_BYTES];
  uint64_t tokens_device, tokens_inode;
} token_dataset;

/* Returns 0 on success. On failure returns the exit status (EXIT_USER_ERROR when
 * a file is missing, EXIT_IO_ERROR when one is unreadable, truncated or has the
 * wrong magic) and writes one line naming the file and what is wrong into err. */
int dataset_open(token_dataset *ds, const char *path, char *err, size_t err_bytes);
void dataset_close(token_dataset *ds);

/* 0 when the tokens file is still the one mapped, at its mapped size; otherwise
 * EXIT_IO_ERROR and one line naming the file (disappeared, replaced, truncated
 * or extended). One stat(2): cheap enough to run before every step's reads. */
int dataset_check_unchanged(const token_dataset *ds, char *err, size_t err_bytes);

/* Orders token ids by how wrong they are: any negative id is worse than every
 * non-negative one (more negative is worse), then larger is worse. The value
 * reported is the id itself, so a negative id prints as negative. */
static inline int64_t token_id_badness(int32_t id) { return id < 0 ? (int64_t)INT32_MAX - (int64_t)id : id; }
static inline int32_t token_id_from_badness(int64_t b) { return b > INT32_MAX ? (int32_t)(INT32_MAX - b) : (int32_t)b; }
static inline int token_id_worse(int32_t a, int32_t b) { return token_id_badness(a) > token_id_badness(b); }

/* Number of whole windows of seq_len+1 tokens (windows overlap by one token). */
uint64_t dataset_n_windows(const token_dataset *ds, int seq_len);

/* Copies window w (seq_len+1 tokens starting at token w·seq_len) into out as
 * int32, and returns the worst token id it copied (token_id_worse: a negative
 * one if any, else the largest), so the caller can check it against the
 * vocabulary. */
int32_t dataset_read_window(const token_dataset *ds, uint64_t window, int seq_len, int32_t *out);

/* Reads token i (any dtype) as int64. */
int64_t dataset_token(const token_dataset *ds, uint64_t i);

#endif
