/* bpe_hf_json — see bpe_hf_json.h. */
#include "bpe_hf_json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_alphabet.h"
#include "fail.h"

/* ---- reading ---- */

static const char *type_of(const json_t *o) {
  const char *t = json_string_value(json_object_get(o, "type"));
  return t ? t : "(no type)";
}

/* false, or absent/null when absent_ok; the value otherwise */
static int is_false(const json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return !v || json_is_null(v) || json_is_false(v);
}

static int is_empty_string(const json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

/* A pre-tokenizer for messages: "Split (pattern '...')", "Sequence [A, B]". */
static void describe(const json_t *p, char *out, size_t out_bytes) {
  const char *type = type_of(p);
  json_t *pattern = json_object_get(json_object_get(p, "pattern"), "Regex");
  if (!pattern) pattern = json_object_get(json_object_get(p, "pattern"), "String");
  json_t *list = json_object_get(p, "pretokenizers");
  if (pattern && json_is_string(pattern)) {
    snprintf(out, out_bytes, "%s (pattern '%.80s%s')", type, json_string_value(pattern),
             json_string_length(pattern) > 80 ? "..." : "");
  } else if (json_is_array(list)) {
    size_t o = (size_t)snprintf(out, out_bytes, "%s [", type), i;
    json_t *item;
    json_array_foreach(list, i, item) {
      if (o >= out_bytes) break;
      if (i) o += (size_t)snprintf(out + o, out_bytes - o, ", ");
      if (o < out_bytes) describe(item, out + o, out_bytes - o);
      o = strlen(out);
    }
    if (o < out_bytes) snprintf(out + o, out_bytes - o, "]");
  } else {
    snprintf(out, out_bytes, "%s", type);
  }
}

/* Only what encodes as GPT-2 does: no normalizer, the ByteLevel
 * pre-tokenizer with GPT-2's regex and no prefix space, a plain BPE model. */
static int check_pipeline(const json_t *root, const json_t *model, char *problem, size_t n) {
  char what[400];
  const json_t *norm = json_object_get(root, "normalizer"), *pre = json_object_get(root, "pre_tokenizer");
  const json_t *dec = json_object_get(root, "decoder");
  const char *model_type = json_string_value(json_object_get(model, "type"));
  if (model_type && strcmp(model_type, "BPE") != 0)
    snprintf(problem, n, "the model is %s, not byte-level BPE (tessera reads GPT-2-style byte-level BPE only)", model_type);
  else if (!json_is_object(json_object_get(model, "vocab")) || !json_is_array(json_object_get(model, "merges")))
    snprintf(problem, n, "the model has no \"vocab\" object and \"merges\" list");
  else if (norm && !json_is_null(norm))
    snprintf(problem, n, "it has the normalizer %s; tessera's byte-level BPE has none", type_of(norm));
  else if (!pre || json_is_null(pre) || strcmp(type_of(pre), "ByteLevel") != 0)
    describe(pre, what, sizeof what),
        snprintf(problem, n, "the pre-tokenizer is %s, not GPT-2's ByteLevel", pre ? what : "missing");
  else if (!is_false(pre, "add_prefix_space"))
    snprintf(problem, n, "its ByteLevel pre-tokenizer adds a prefix space (add_prefix_space); GPT-2's does not");
  else if (json_is_false(json_object_get(pre, "use_regex")))
    snprintf(problem, n, "its ByteLevel pre-tokenizer does not split with GPT-2's pattern (use_regex false)");
  else if (dec && !json_is_null(dec) && strcmp(type_of(dec), "ByteLevel") != 0)
    snprintf(problem, n, "the decoder is %s, not ByteLevel", type_of(dec));
  else if (!is_false(model, "byte_fallback") || !is_false(model, "ignore_merges"))
    snprintf(problem, n, "the BPE model sets byte_fallback or ignore_merges, which GPT-2's BPE does not");
  else if (!is_false(model, "dropout") && json_number_value(json_object_get(model, "dropout")) != 0)
    snprintf(problem, n, "the BPE model sets dropout (random merges)");
  else if (!is_empty_string(model, "continuing_subword_prefix") || !is_empty_string(model, "end_of_word_suffix"))
    snprintf(problem, n, "the BPE model sets a continuing_subword_prefix or end_of_word_suffix");
  else return 0;
  return -1;
}

/* The added token of the given text and id in added_tokens, or NULL. */
static json_t *added_with(const json_t *added, const char *text, json_int_t id) {
  size_t i;
  json_t *t;
  json_array_foreach(added, i, t) {
    const char *content = json_string_value(json_object_get(t, "content"));
    if (content && strcmp(content, text) == 0 && json_integer_value(json_object_get(t, "id")) == id) return t;
  }
  return NULL;
}

static int read_vocab(bpe_model *m, const json_t *vocab, const json_t *added, char *problem, size_t n) {
  const char *key;
  json_t *value;
  char *bytes = xmalloc(65536, "token");
  int status = 0;
  json_object_foreach((json_t *)vocab, key, value) {
    size_t key_bytes = strlen(key);
    long n_raw = key_bytes < 65536 ? bpe_alphabet_unspell(key, key_bytes, bytes) : -1;
    if (!json_is_integer(value)) {
      snprintf(problem, n, "the id of '%.60s' is not an integer", key);
    } else if (n_raw < 0) { /* an added token listed under its own text is fine */
      if (added_with(added, key, json_integer_value(value))) continue;
      snprintf(problem, n, "the token '%.60s' is not spelled in GPT-2's byte alphabet", key);
    } else if (bpe_model_add_token(m, bytes, (size_t)n_raw, json_integer_value(value), problem, n) == 0) {
      continue;
    }
    status = -1;
    break;
  }
  free(bytes);
  return status;
}

static int read_added(bpe_model *m, const json_t *added, const json_t *vocab, char *problem, size_t n) {
  size_t i;
  json_t *t;
  json_array_foreach(added, i, t) {
    const json_t *content = json_object_get(t, "content"), *id = json_object_get(t, "id");
    if (!json_is_string(content) || !json_is_integer(id)) {
      snprintf(problem, n, "added token %zu has no \"id\" and \"content\"", i + 1);
      return -1;
    }
    bpe_added_token a = {.id = (int32_t)json_integer_value(id),
                         .special = json_is_true(json_object_get(t, "special")),
                         .normalized = json_is_true(json_object_get(t, "normalized")),
                         .lstrip = json_is_true(json_object_get(t, "lstrip")),
                         .rstrip = json_is_true(json_object_get(t, "rstrip")),
                         .single_word = json_is_true(json_object_get(t, "single_word"))};
    if (json_integer_value(id) != a.id) a.id = -1; /* out of int32: refused below */
    /* read_vocab skipped it: the vocabulary lists it under its own text */
    json_t *listed = json_object_get(vocab, json_string_value(content));
    int in_vocab_as_text = listed && json_integer_value(listed) == a.id &&
                           !(a.id < m->n_ids && (m->token_flags[a.id] & BPE_IN_VOCAB));
    if (bpe_model_add_special(m, json_string_value(content), json_string_length(content), &a, problem, n))
      return -1;
    if (in_vocab_as_text) m->token_flags[a.id] |= BPE_VOCAB_AS_TEXT;
  }
  return 0;
}

/* A merge as "left right" or ["left", "right"], spelled in the byte alphabet. */
static int read_merge(bpe_model *m, const json_t *merge, size_t index, char *problem, size_t n) {
  const char *left = NULL, *right = NULL;
  size_t left_n = 0, right_n = 0;
  if (json_is_string(merge)) {
    const char *s = json_string_value(merge), *space = strchr(s, ' ');
    if (space && space > s && space[1] && !strchr(space + 1, ' '))
      left = s, left_n = (size_t)(space - s), right = space + 1, right_n = strlen(right);
  } else if (json_is_array(merge) && json_array_size(merge) == 2 && json_is_string(json_array_get(merge, 0)) &&
             json_is_string(json_array_get(merge, 1))) {
    left = json_string_value(json_array_get(merge, 0)), left_n = json_string_length(json_array_get(merge, 0));
    right = json_string_value(json_array_get(merge, 1)), right_n = json_string_length(json_array_get(merge, 1));
  }
  char l[1024], r[1024];
  long nl = left && left_n < sizeof l ? bpe_alphabet_unspell(left, left_n, l) : -1;
  long nr = right && right_n < sizeof r ? bpe_alphabet_unspell(right, right_n, r) : -1;
  if (!left) snprintf(problem, n, "merge %zu is neither \"left right\" nor [\"left\", \"right\"]", index + 1);
  else if (nl < 0 || nr < 0) snprintf(problem, n, "merge %zu is not spelled in GPT-2's byte alphabet", index + 1);
  else return bpe_model_add_merge(m, l, (size_t)nl, r, (size_t)nr, problem, n);
  return -1;
}

bpe_model *bpe_from_hf_json(const char *text, size_t n_bytes, const char *origin, char *err,
                            size_t err_bytes) {
  json_error_t jerr;
  json_t *root = json_loadb(text, n_bytes, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    snprintf(err, err_bytes, "%s is not valid JSON (line %d, column %d: %s)", origin, jerr.line, jerr.column,
             jerr.text);
    return NULL;
  }
  char problem[600] = "";
  bpe_model *m = bpe_model_new();
  json_t *model = json_object_get(root, "model"), *added = json_object_get(root, "added_tokens");
  if (!json_is_object(model)) snprintf(problem, sizeof problem, "it has no \"model\" object (not a tokenizer.json)");
  else if (added && !json_is_array(added)) snprintf(problem, sizeof problem, "\"added_tokens\" is not a list");
  if (!problem[0] && !check_pipeline(root, model, problem, sizeof problem) &&
      !read_vocab(m, json_object_get(model, "vocab"), added, problem, sizeof problem) &&
      !read_added(m, added, json_object_get(model, "vocab"), problem, sizeof problem)) {
    size_t i;
    json_t *merge;
    json_array_foreach(json_object_get(model, "merges"), i, merge) {
      if (read_merge(m, merge, i, problem, sizeof problem)) break;
    }
    if (!problem[0]) bpe_model_finish(m, problem, sizeof problem);
  }
  json_decref(root);
  if (problem[0]) {
    snprintf(err, err_bytes, "%s: %s", origin, problem);
    bpe_model_free(m);
    return NULL;
  }
  return m;
}

/* ---- writing ---- */

/* {"type": "ByteLevel", ...} as GPT-2's tokenizer.json has it */
static json_t *byte_level(int add_prefix_space, int trim_offsets) {
  return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", add_prefix_space,
                   "trim_offsets", trim_offsets, "use_regex", 1);
}

static json_t *added_tokens(const bpe_model *m) {
  json_t *list = json_array();
  for (size_t i = 0; list && i < m->n_added; i++) {
    const bpe_added_token *a = &m->added[i];
    size_t n = 0;
    const char *text = bpe_token(m, a->id, &n);
    json_t *t = json_pack("{s:i, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)a->id, "content", text, n,
                          "single_word", a->single_word, "lstrip", a->lstrip, "rstrip", a->rstrip,
                          "normalized", a->normalized, "special", a->special);
    if (!t || json_array_append_new(list, t)) {
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

/* token text -> id in id order: spelled in the byte alphabet, or the plain
 * text of an added token that the vocabulary listed so */
static json_t *vocab_object(const bpe_model *m) {
  json_t *vocab = json_object();
  char *spelled = xmalloc(2 * 65536 + 1, "token");
  for (int32_t id = 0; vocab && id < m->n_ids; id++) {
    size_t n = 0;
    const char *bytes = bpe_token(m, id, &n);
    if (!bytes || !(m->token_flags[id] & (BPE_IN_VOCAB | BPE_VOCAB_AS_TEXT))) continue;
    ENSURE(n <= 65536, "token %d of %zu bytes", (int)id, n);
    size_t k = m->token_flags[id] & BPE_IN_VOCAB ? bpe_alphabet_spell(bytes, n, spelled) : (memcpy(spelled, bytes, n), n);
    spelled[k] = '\0'; /* no token holds a NUL: byte 0 is spelled U+0100 */
    if (json_object_set_new_nocheck(vocab, spelled, json_integer(id))) {
      json_decref(vocab);
      vocab = NULL;
    }
  }
  free(spelled);
  return vocab;
}

static json_t *merges_list(const bpe_model *m) {
  json_t *list = json_array();
  char *line = xmalloc(4 * 65536 + 2, "merge");
  for (size_t r = 0; list && r < m->n_merges; r++) {
    size_t nl = 0, nr = 0;
    const char *l = bpe_token(m, m->merges[r].left, &nl), *rt = bpe_token(m, m->merges[r].right, &nr);
    size_t k = bpe_alphabet_spell(l, nl, line);
    line[k++] = ' ';
    k += bpe_alphabet_spell(rt, nr, line + k);
    if (json_array_append_new(list, json_stringn_nocheck(line, k))) {
      json_decref(list);
      list = NULL;
    }
  }
  free(line);
  return list;
}

char *bpe_to_hf_json(const bpe_model *m) {
  json_t *model = json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                            "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0,
                            "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab_object(m), "merges",
                            merges_list(m));
  json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation",
                           "padding", "added_tokens", added_tokens(m), "normalizer", "pre_tokenizer",
                           byte_level(0, 1), "post_processor", byte_level(1, 0), "decoder", byte_level(1, 1),
                           "model", model);
  if (!root) return NULL;
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  return text;
}
