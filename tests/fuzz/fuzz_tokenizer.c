/* fuzz_tokenizer — the tokenizer loaders and the encoder (io/tokenizer,
 * io/bpe_files, io/bpe_hf_json, io/bpe_encode).
 *
 * Input: byte 0 picks what is fuzzed:
 *   0: the rest is the text of a tokenizer.json (tokenizer_from_json);
 *   1: the rest is a tokenizer.json file (tokenizer_load of its path);
 *   2: GPT-2's pair: a 4-byte length L, L bytes of encoder.json, the rest
 *      vocab.bpe, in a folder (tokenizer_load of the folder);
 *   3: the rest is text for a fixed small byte-level BPE.
 * Properties of every tokenizer loaded: any bytes (the input itself) encode
 * to at most one id per byte, each in the vocabulary, whose bytes join to
 * the text again; its tokenizer.json reads back to a tokenizer that encodes
 * the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe_hf_json.h"
#include "bpe_model.h"
#include "fail.h"
#include "fuzz.h"
#include "tokenizer.h"

/* ids of text, malloc'd; *n_ids set */
static int32_t *encoded(tokenizer *t, const uint8_t *text, size_t n_bytes, size_t *n_ids) {
  int32_t *ids = malloc((n_bytes + 1) * sizeof *ids);
  FUZZ_ASSERT(ids, "out of memory");
  *n_ids = tokenizer_encode(t, (const char *)text, n_bytes, ids);
  FUZZ_ASSERT(*n_ids <= n_bytes, "%zu bytes became %zu ids", n_bytes, *n_ids);
  return ids;
}

static void check_round_trip(tokenizer *t, const uint8_t *text, size_t n_bytes) {
  size_t n_ids;
  int32_t *ids = encoded(t, text, n_bytes, &n_ids);
  size_t at = 0;
  for (size_t i = 0; i < n_ids; i++) {
    FUZZ_ASSERT(ids[i] >= 0 && ids[i] < tokenizer_vocab_size(t), "id %d outside the vocabulary of %d", ids[i],
                tokenizer_vocab_size(t));
    char scratch[32];
    const char *bytes;
    const size_t n = tokenizer_token_bytes(t, ids[i], scratch, &bytes);
    FUZZ_ASSERT(at + n <= n_bytes && memcmp(text + at, bytes, n) == 0,
                "id %zu (%d) decodes to bytes that are not the text's at byte %zu", i, ids[i], at);
    at += n;
  }
  FUZZ_ASSERT(at == n_bytes, "the ids decode to %zu of the %zu bytes", at, n_bytes);
  free(ids);
}

/* what checkpoints and dataset sidecars do: the tokenizer travels as its
 * tokenizer.json text */
static void check_json_round_trip(tokenizer *t, const uint8_t *text, size_t n_bytes) {
  char *json = tokenizer_to_json(t);
  if (!json) return; /* the bytes tokenizer */
  char err[MESSAGE_BYTES] = "";
  tokenizer *again = tokenizer_from_json(json, strlen(json), err, sizeof err);
  FUZZ_ASSERT(again, "the tokenizer's own tokenizer.json is refused: %s", err);
  FUZZ_ASSERT(tokenizer_vocab_size(again) == tokenizer_vocab_size(t) && tokenizer_eot(again) == tokenizer_eot(t),
              "the tokenizer.json reads back to another vocabulary");
  size_t n_first, n_second;
  int32_t *first = encoded(t, text, n_bytes, &n_first), *second = encoded(again, text, n_bytes, &n_second);
  FUZZ_ASSERT(n_first == n_second && memcmp(first, second, n_first * sizeof *first) == 0,
              "the tokenizer read back from its tokenizer.json encodes differently");
  free(first);
  free(second);
  free(json);
  tokenizer_free(again);
}

static void check_tokenizer(tokenizer *t, const uint8_t *text, size_t n_bytes) {
  FUZZ_ASSERT(tokenizer_vocab_size(t) > 0 && tokenizer_eot(t) >= -1 && tokenizer_eot(t) < tokenizer_vocab_size(t),
              "vocabulary %d, end of text %d", tokenizer_vocab_size(t), tokenizer_eot(t));
  check_round_trip(t, text, n_bytes);
  check_json_round_trip(t, text, n_bytes);
}

/* A small byte-level BPE: the 256 bytes, a few merges, <|endoftext|>. */
static tokenizer *small_bpe(void) {
  static const char *const merges[][2] = {{"t", "h"}, {"th", "e"}, {" ", "t"}, {" t", "h"}, {" th", "e"},
                                          {"i", "n"}, {"e", "r"}, {" ", "a"}, {"\xc3", "\xa9"}};
  char err[MESSAGE_BYTES] = "";
  bpe_model *m = bpe_model_new();
  int32_t id = 0;
  for (int b = 0; b < 256; b++) {
    const char byte = (char)b;
    FUZZ_ASSERT(bpe_model_add_token(m, &byte, 1, id++, err, sizeof err) == 0, "%s", err);
  }
  for (size_t k = 0; k < sizeof merges / sizeof merges[0]; k++) {
    char joined[16];
    const size_t nl = strlen(merges[k][0]), nr = strlen(merges[k][1]);
    memcpy(joined, merges[k][0], nl);
    memcpy(joined + nl, merges[k][1], nr);
    FUZZ_ASSERT(bpe_model_add_token(m, joined, nl + nr, id++, err, sizeof err) == 0, "%s", err);
    FUZZ_ASSERT(bpe_model_add_merge(m, merges[k][0], nl, merges[k][1], nr, err, sizeof err) == 0, "%s", err);
  }
  const bpe_added_token eot = {.id = id, .special = true};
  FUZZ_ASSERT(bpe_model_add_special(m, "<|endoftext|>", 13, &eot, err, sizeof err) == 0, "%s", err);
  FUZZ_ASSERT(bpe_model_finish(m, err, sizeof err) == 0, "%s", err);
  char *json = bpe_to_hf_json(m);
  bpe_model_free(m);
  FUZZ_ASSERT(json, "out of memory");
  tokenizer *t = tokenizer_from_json(json, strlen(json), err, sizeof err);
  FUZZ_ASSERT(t, "the small BPE is refused: %s", err);
  free(json);
  return t;
}

/* tokenizer_load of the GPT-2 pair in a folder */
static tokenizer *load_pair(fuzz_input *in, char *err, size_t err_bytes) {
  char folder[512], path[512];
  snprintf(folder, sizeof folder, "%s/gpt2", fuzz_scratch_dir());
  mkdir(folder, 0700);
  size_t encoder_bytes = fuzz_u32(in), rest_bytes;
  const uint8_t *rest = fuzz_rest(in, &rest_bytes);
  if (encoder_bytes > rest_bytes) encoder_bytes = rest_bytes;
  fuzz_write_file("gpt2/encoder.json", rest, encoder_bytes, path, sizeof path);
  fuzz_write_file("gpt2/vocab.bpe", rest + encoder_bytes, rest_bytes - encoder_bytes, path, sizeof path);
  return tokenizer_load(folder, err, err_bytes);
}

int fuzz_tokenizer(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size, 0};
  const int mode = fuzz_u8(&in) & 3;
  char err[MESSAGE_BYTES] = "", path[512];
  tokenizer *t = NULL;
  size_t rest_bytes;
  const uint8_t *rest;
  if (mode == 3) {
    static tokenizer *fixed;
    if (!fixed) fixed = small_bpe();
    rest = fuzz_rest(&in, &rest_bytes);
    check_round_trip(fixed, rest, rest_bytes);
    return 0;
  }
  if (mode == 0) {
    rest = fuzz_rest(&in, &rest_bytes);
    t = tokenizer_from_json((const char *)rest, rest_bytes, err, sizeof err);
  } else if (mode == 1) {
    rest = fuzz_rest(&in, &rest_bytes);
    fuzz_write_file("tokenizer.json", rest, rest_bytes, path, sizeof path);
    t = tokenizer_load(path, err, sizeof err);
  } else {
    t = load_pair(&in, err, sizeof err);
  }
  if (!t) {
    fuzz_refused(err);
    return 0;
  }
  check_tokenizer(t, data, size);
  tokenizer_free(t);
  return 0;
}

FUZZ_ENTRY(fuzz_tokenizer)
