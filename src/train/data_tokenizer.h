/* data_tokenizer — the tokenizer the run's data was made with
 * (doc/data-format.md, "The tokenizer of a dataset").
 *
 * The training data's sidecar PREFIX.tokenizer.json names it; for data
 * without one the [data] key `tokenizer` does (a sidecar that disagrees
 * with the key is an error); without either, an llm.c shard holds GPT-2
 * tokens (50257 ids, with nothing to decode them: samples are skipped) and
 * a Megatron dataset is taken as bytes (its ids are checked as they are
 * read, since another tool may have made it). Separate validation data must
 * have the same tokenizer. A named vocabulary larger than the model's
 * vocab_size is one error before anything is built.
 */
#ifndef TESSERA_DATA_TOKENIZER_H
#define TESSERA_DATA_TOKENIZER_H

#include <stdbool.h>

#include "config.h"
#include "fail.h"
#include "token_dataset.h"
#include "tokenizer.h"

typedef struct data_tokenizer {
  tokenizer *tok;  /* NULL: GPT-2 tokens (an llm.c shard) whose files nobody named */
  int n_ids;       /* ids the data may hold; 0: not known (a dataset without a sidecar) */
  bool named;      /* by a sidecar or the key: checkpoints carry it */
  char origin[MESSAGE_BYTES]; /* where it came from, for reports and messages */
} data_tokenizer;

/* Every rank resolves the same files; a refusal is one message
 * (fail_collective). val: the separate validation data, or NULL. */
void data_tokenizer_resolve(const config *cfg, const token_dataset *train, const token_dataset *val,
                            data_tokenizer *out);
void data_tokenizer_free(data_tokenizer *dt);

#endif
