/* data_tokenizer — see data_tokenizer.h. */
#include "data_tokenizer.h"

#include <stdio.h>
#include <string.h>

#include "dataset_tokenizer.h"

#define GPT2_N_IDS 50257 /* what an llm.c shard holds */

static const char *name_of(const data_tokenizer *dt) {
  return dt->tok ? tokenizer_description(dt->tok) : "GPT-2 tokens (50257 ids)";
}

/* The key's tokenizer, loaded once per rank; NULL when the key is unset. */
static tokenizer *load_key(const config *cfg) {
  if (!cfg->tokenizer[0]) return NULL;
  char err[MESSAGE_BYTES];
  tokenizer *t = tokenizer_load(cfg->tokenizer, err, sizeof err);
  if (!t) fail_collective(EXIT_USER_ERROR, "the config's tokenizer '%s': %s", cfg->tokenizer, err);
  return t;
}

/* One dataset's tokenizer; key: the key's tokenizer or NULL. */
static void resolve_one(const config *cfg, const token_dataset *ds, const tokenizer *key, data_tokenizer *out) {
  memset(out, 0, sizeof *out);
  char err[MESSAGE_BYTES], sidecar[JOINED_PATH_BYTES];
  const int status = dataset_sidecar_read(ds->path, &out->tok, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  dataset_sidecar_path(ds->path, sidecar, sizeof sidecar);
  if (out->tok) {
    if (key && !tokenizers_agree(out->tok, key))
      fail_collective(EXIT_USER_ERROR,
                      "data '%s' was made with the tokenizer %s (%s), but the config's tokenizer '%s' is %s: "
                      "drop the key `tokenizer` or use data made with it",
                      ds->path, tokenizer_description(out->tok), sidecar, cfg->tokenizer, tokenizer_description(key));
    snprintf(out->origin, sizeof out->origin, "%s", sidecar);
    out->named = true;
  } else if (key) {
    char json_err[MESSAGE_BYTES];
    out->tok = tokenizer_load(cfg->tokenizer, json_err, sizeof json_err); /* its own copy: one per owner */
    if (!out->tok) fail_collective(EXIT_USER_ERROR, "the config's tokenizer '%s': %s", cfg->tokenizer, json_err);
    snprintf(out->origin, sizeof out->origin, "the config's tokenizer = %s", cfg->tokenizer);
    out->named = true;
  } else if (ds->format == TOKEN_FORMAT_LLMC) {
    snprintf(out->origin, sizeof out->origin, "an llm.c shard: GPT-2's tokens");
    out->n_ids = GPT2_N_IDS;
    return;
  } else {
    out->tok = tokenizer_bytes();
    if (!out->tok) fail_collective(EXIT_USER_ERROR, "out of memory for the bytes tokenizer");
    snprintf(out->origin, sizeof out->origin, "no %s: bytes", sidecar);
    return; /* n_ids 0: another tool's dataset may hold more ids; each is checked as read */
  }
  out->n_ids = tokenizer_vocab_size(out->tok);
}

static bool same_tokenizer(const data_tokenizer *a, const data_tokenizer *b) {
  if (!a->tok || !b->tok) return !a->tok && !b->tok;
  return tokenizers_agree(a->tok, b->tok);
}

void data_tokenizer_resolve(const config *cfg, const token_dataset *train, const token_dataset *val,
                            data_tokenizer *out) {
  tokenizer *key = load_key(cfg);
  resolve_one(cfg, train, key, out);
  if (val) {
    data_tokenizer v;
    resolve_one(cfg, val, key, &v);
    const bool same = same_tokenizer(out, &v);
    if (!same)
      fail_collective(EXIT_USER_ERROR,
                      "the validation data '%s' was made with %s (%s), the training data '%s' with %s (%s): "
                      "validate on data made with the training data's tokenizer",
                      val->path, name_of(&v), v.origin, train->path, name_of(out), out->origin);
    data_tokenizer_free(&v);
  }
  tokenizer_free(key);
  if (out->n_ids > cfg->vocab_size)
    fail_collective(EXIT_USER_ERROR, "the dataset's tokenizer has %d ids, the model's vocab_size is %d: set "
                    "vocab_size >= %d (the tokenizer: %s, from %s)",
                    out->n_ids, cfg->vocab_size, out->n_ids, name_of(out), out->origin);
}

void data_tokenizer_free(data_tokenizer *dt) {
  tokenizer_free(dt->tok);
  memset(dt, 0, sizeof *dt);
}
