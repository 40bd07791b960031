/* bpe_files — see bpe_files.h. */
#include "bpe_files.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe_alphabet.h"
#include "bpe_hf_json.h"
#include "fail.h"

char *bpe_read_file(const char *path, size_t *n_bytes, char *err, size_t err_bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_bytes, "cannot open '%s': %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 20, n = 0;
  char *text = xmalloc(cap + 1, "tokenizer file");
  for (;;) {
    n += fread(text + n, 1, cap - n, f);
    if (n < cap) break;
    cap *= 2;
    char *bigger = realloc(text, cap + 1);
    if (!bigger) fail_local(EXIT_USER_ERROR, "out of memory reading '%s'", path);
    text = bigger;
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    snprintf(err, err_bytes, "cannot read '%s'", path);
    free(text);
    return NULL;
  }
  text[n] = '\0';
  *n_bytes = n;
  return text;
}

/* encoder.json: {"token": id, ...}, tokens in the byte alphabet. */
static int read_encoder(bpe_model *m, const char *path, char *err, size_t err_bytes) {
  size_t n_bytes;
  char *text = bpe_read_file(path, &n_bytes, err, err_bytes);
  if (!text) return -1;
  json_error_t jerr;
  json_t *root = json_loadb(text, n_bytes, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (!root) {
    snprintf(err, err_bytes, "'%s' is not valid JSON (line %d, column %d: %s)", path, jerr.line,
             jerr.column, jerr.text);
    return -1;
  }
  char problem[512] = "";
  if (!json_is_object(root)) snprintf(problem, sizeof problem, "it is no JSON object of token -> id");
  const char *key;
  json_t *value;
  char *bytes = xmalloc(65536, "token");
  json_object_foreach(root, key, value) {
    if (problem[0]) break;
    size_t key_bytes = strlen(key);
    long n = key_bytes < 65536 ? bpe_alphabet_unspell(key, key_bytes, bytes) : -1;
    if (!json_is_integer(value)) snprintf(problem, sizeof problem, "the id of '%.60s' is not an integer", key);
    else if (n < 0) snprintf(problem, sizeof problem, "'%.60s' is not spelled in GPT-2's byte alphabet", key);
    else bpe_model_add_token(m, bytes, (size_t)n, json_integer_value(value), problem, sizeof problem);
  }
  free(bytes);
  json_decref(root);
  if (problem[0]) {
    snprintf(err, err_bytes, "'%s': %s", path, problem);
    return -1;
  }
  return 0;
}

/* One line of vocab.bpe: "left right" (a trailing \r is tolerated). */
static int read_merge_line(bpe_model *m, char *line, size_t n, char *problem, size_t problem_bytes) {
  if (n > 0 && line[n - 1] == '\r') n--;
  char *space = memchr(line, ' ', n);
  if (!space || space == line || space == line + n - 1 || memchr(space + 1, ' ', n - (size_t)(space - line) - 1)) {
    snprintf(problem, problem_bytes, "'%.*s' is not two tokens separated by one space", (int)(n < 60 ? n : 60), line);
    return -1;
  }
  size_t left_n = (size_t)(space - line), right_n = n - left_n - 1;
  char left[1024], right[1024];
  long l = left_n < sizeof left ? bpe_alphabet_unspell(line, left_n, left) : -1;
  long r = right_n < sizeof right ? bpe_alphabet_unspell(space + 1, right_n, right) : -1;
  if (l < 0 || r < 0) {
    snprintf(problem, problem_bytes, "'%.*s' is not spelled in GPT-2's byte alphabet", (int)(n < 60 ? n : 60), line);
    return -1;
  }
  return bpe_model_add_merge(m, left, (size_t)l, right, (size_t)r, problem, problem_bytes);
}

static int read_merges(bpe_model *m, const char *path, char *err, size_t err_bytes) {
  size_t n_bytes;
  char *text = bpe_read_file(path, &n_bytes, err, err_bytes);
  if (!text) return -1;
  char problem[512] = "";
  size_t line_no = 0;
  char *line = text, *end = text + n_bytes;
  if (strncmp(text, "#version", 8) != 0)
    snprintf(problem, sizeof problem, "the first line is not '#version: 0.2' (not a GPT-2 vocab.bpe)");
  while (!problem[0] && line < end) {
    char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) eol = end;
    line_no++;
    if (line_no > 1 && eol > line && !(eol - line == 1 && *line == '\r'))
      read_merge_line(m, line, (size_t)(eol - line), problem, sizeof problem);
    line = eol + 1;
  }
  free(text);
  if (problem[0]) {
    if (line_no > 1) snprintf(err, err_bytes, "'%s' line %zu: %s", path, line_no, problem);
    else snprintf(err, err_bytes, "'%s': %s", path, problem);
    return -1;
  }
  return 0;
}

bpe_model *bpe_load_gpt2_files(const char *encoder_path, const char *merges_path, char *err,
                               size_t err_bytes) {
  bpe_model *m = bpe_model_new();
  char problem[512];
  if (read_encoder(m, encoder_path, err, err_bytes) || read_merges(m, merges_path, err, err_bytes)) {
    bpe_model_free(m);
    return NULL;
  }
  /* GPT-2's only special token is an ordinary entry of encoder.json */
  uint32_t id;
  bpe_added_token eot = {.special = true, .normalized = true};
  if (byte_table_find(&m->vocab, "<|endoftext|>", 13, byte_table_hash("<|endoftext|>", 13), &id)) {
    eot.id = (int32_t)id;
    if (bpe_model_add_special(m, "<|endoftext|>", 13, &eot, problem, sizeof problem)) goto bad;
  }
  if (bpe_model_finish(m, problem, sizeof problem)) goto bad;
  return m;
bad:
  snprintf(err, err_bytes, "'%s' + '%s': %s", encoder_path, merges_path, problem);
  bpe_model_free(m);
  return NULL;
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bpe_model *load_hf_file(const char *path, char *err, size_t err_bytes) {
  size_t n_bytes;
  char *text = bpe_read_file(path, &n_bytes, err, err_bytes);
  if (!text) return NULL;
  char origin[JOINED_PATH_BYTES + 2];
  snprintf(origin, sizeof origin, "'%s'", path);
  bpe_model *m = bpe_from_hf_json(text, n_bytes, origin, err, err_bytes);
  free(text);
  return m;
}

bpe_model *bpe_load_path(const char *path, char *err, size_t err_bytes) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, err_bytes, "cannot load tokenizer '%s': %s", path, strerror(errno));
    return NULL;
  }
  if (!S_ISDIR(st.st_mode)) return load_hf_file(path, err, err_bytes);
  char a[JOINED_PATH_BYTES], b[JOINED_PATH_BYTES];
  snprintf(a, sizeof a, "%s/tokenizer.json", path);
  if (is_file(a)) return load_hf_file(a, err, err_bytes);
  static const char *pairs[2][2] = {{"encoder.json", "vocab.bpe"}, {"vocab.json", "merges.txt"}};
  for (int p = 0; p < 2; p++) {
    snprintf(a, sizeof a, "%s/%s", path, pairs[p][0]);
    snprintf(b, sizeof b, "%s/%s", path, pairs[p][1]);
    if (is_file(a) || is_file(b)) return bpe_load_gpt2_files(a, b, err, err_bytes);
  }
  snprintf(err, err_bytes,
           "the folder '%s' holds no tokenizer: expected tokenizer.json, or encoder.json + vocab.bpe "
           "(GPT-2's files; Hugging Face names them vocab.json + merges.txt)", path);
  return NULL;
}
