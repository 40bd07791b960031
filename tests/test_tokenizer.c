/* test_tokenizer — the tokenizer layer (io/tokenizer.h and the bpe_* files):
 * the bytes tokenizer; GPT-2's pre-tokenizer piece by piece; a small
 * byte-level BPE written here as a tokenizer.json, whose ids follow from its
 * merge ranks by hand; round trips on valid and invalid UTF-8; the
 * tokenizer.json tessera writes read back; and one clear message for every
 * missing or damaged file. With TESSERA_GPT2_TOKENIZER set (jobs/test), also
 * GPT-2's published files: known ids and random bytes round-tripping. The
 * comparison with Hugging Face and tiktoken is tests/tokenizer_reference.sh. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe_alphabet.h"
#include "bpe_pretokenize.h"
#include "testing.h"
#include "token_round_trip.h"
#include "tokenizer.h"

static char dir[] = "/tmp/tessera-tokenizer-XXXXXX";

static const char *path_of(const char *name) {
  static char paths[4][512];
  static int next;
  char *p = paths[next++ % 4];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static void write_file(const char *name, const char *text, size_t n_bytes) {
  FILE *f = fopen(path_of(name), "wb");
  if (!f || fwrite(text, 1, n_bytes, f) != n_bytes || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", name);
    exit(99);
  }
}

static void test_bytes_tokenizer(void) {
  tokenizer *t = tokenizer_bytes();
  const char text[] = "caf\xc3\xa9 \xff\xfe\x80";
  int32_t ids[sizeof text];
  size_t n = tokenizer_encode(t, text, sizeof text - 1, ids);
  CHECK(n == sizeof text - 1 && ids[4] == 0xa9 && ids[6] == 0xff, "bytes: one id per byte, the byte's value");
  CHECK(round_trips(t, ids, n, text, sizeof text - 1), "bytes: invalid UTF-8 round-trips");
  CHECK(tokenizer_kind_of(t) == TOKENIZER_BYTES && tokenizer_to_json(t) == NULL, "bytes: no tokenizer.json");
  CHECK(strcmp(tokenizer_description(t), "bytes (257 ids)") == 0, "bytes: description '%s'", tokenizer_description(t));
  tokenizer_free(t);
}

/* The pieces of text, joined by '|'. */
static const char *pieces(const char *text) {
  static char out[512];
  size_t n = strlen(text), o = 0;
  for (size_t i = 0; i < n;) {
    size_t end = bpe_pretoken_end((const unsigned char *)text, n, i);
    if (o) out[o++] = '|';
    memcpy(out + o, text + i, end - i);
    o += end - i;
    i = end;
  }
  out[o] = '\0';
  return out;
}

static void test_pretokenizer(void) {
  static const char *cases[][2] = {
      {"Hello world", "Hello| world"},
      {"a  b", "a| | b"},                  /* \s+(?!\S): the last space goes to the word */
      {"x   ", "x|   "},                   /* trailing: the whole run */
      {"a\t\t b", "a|\t\t| b"},
      {"a \tb", "a| |\t|b"},                /* a one-character run before a word stays whole */
      {"it's I'll 'S", "it|'s| I|'ll| '|S"}, /* contractions are lower-case only */
      {"x'sy", "x|'s|y"},
      {"abc123 45", "abc|123| 45"},
      {"?!... --x", "?!...| --|x"},
      {"caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve"},                 /* é ï are letters */
      {"a\xc2\xa0" "b", "a|\xc2\xa0|b"},                                         /* NBSP: a space, not ' ' */
      {"\xe4\xb8\xad\xe6\x96\x87 x", "\xe4\xb8\xad\xe6\x96\x87| x"},           /* CJK letters */
      {"e\xcc\x81", "e|\xcc\x81"},                                              /* a combining mark is "other" */
      {"a\x80\x80!b", "a|\x80\x80!|b"},                                         /* invalid bytes are "other" */
      {" \xff", " \xff"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const char *got = pieces(cases[c][0]);
    CHECK(strcmp(got, cases[c][1]) == 0, "pieces of '%s': got '%s', want '%s'", cases[c][0], got, cases[c][1]);
  }
}

/* A tokenizer.json: byte b is id b (spelled in GPT-2's alphabet), merges
 * "a b" -> "ab" 256, "ab c" -> "abc" 257, "Ġ a" -> " a" 258, and the added
 * token <|endoftext|> 259. `damage` edits the JSON object before printing. */
static char *small_json(void (*damage)(json_t *root)) {
  json_t *vocab = json_object(), *merges = json_array();
  for (int b = 0; b < 256; b++) {
    char byte = (char)b, spelled[3];
    spelled[bpe_alphabet_spell(&byte, 1, spelled)] = '\0';
    json_object_set_new(vocab, spelled, json_integer(b));
  }
  json_object_set_new(vocab, "ab", json_integer(256));
  json_object_set_new(vocab, "abc", json_integer(257));
  json_object_set_new(vocab, "\xc4\xa0" "a", json_integer(258));
  json_object_set_new(vocab, "<|endoftext|>", json_integer(259));
  json_array_append_new(merges, json_string("a b"));
  json_array_append_new(merges, json_pack("[s, s]", "ab", "c")); /* the newer pair form */
  json_array_append_new(merges, json_string("\xc4\xa0 a"));
  json_t *root = json_pack("{s:[{s:i, s:s, s:b}], s:n, s:{s:s, s:b}, s:{s:s}, s:{s:s, s:o, s:o}}", "added_tokens",
                           "id", 259, "content", "<|endoftext|>", "special", 1, "normalizer", "pre_tokenizer", "type",
                           "ByteLevel", "add_prefix_space", 0, "decoder", "type", "ByteLevel", "model", "type", "BPE",
                           "vocab", vocab, "merges", merges);
  if (damage) damage(root);
  char *text = json_dumps(root, JSON_PRESERVE_ORDER);
  json_decref(root);
  return text;
}

static size_t encode_str(tokenizer *t, const char *text, int32_t *ids) { return tokenizer_encode(t, text, strlen(text), ids); }

static void test_small_bpe(void) {
  char err[1024] = "";
  char *json = small_json(NULL);
  tokenizer *t = tokenizer_from_json(json, strlen(json), err, sizeof err);
  CHECK(t != NULL, "the small tokenizer.json loads: %s", err);
  if (!t) return;
  CHECK(tokenizer_kind_of(t) == TOKENIZER_BPE && tokenizer_vocab_size(t) == 260 && tokenizer_eot(t) == 259,
        "260 ids, end of text 259 (got %d, %d)", tokenizer_vocab_size(t), (int)tokenizer_eot(t));
  int32_t ids[64];
  size_t n = encode_str(t, "abc", ids);
  CHECK(n == 1 && ids[0] == 257, "'abc': a+b (rank 0) then ab+c (rank 1)");
  n = encode_str(t, "abcab", ids);
  CHECK(n == 2 && ids[0] == 257 && ids[1] == 256, "'abcab': both a+b first, then ab+c");
  n = encode_str(t, " ab", ids);
  CHECK(n == 2 && ids[0] == ' ' && ids[1] == 256, "' ab': a+b (rank 0) wins over Ġ+a (rank 2)");
  n = encode_str(t, " ac", ids);
  CHECK(n == 2 && ids[0] == 258 && ids[1] == 'c', "' ac': Ġ+a");
  n = encode_str(t, "<|endoftext|>", ids);
  CHECK(n > 1 && ids[0] == '<', "the text <|endoftext|> is ordinary text, not the special token");
  char scratch[32];
  const char *bytes;
  CHECK(tokenizer_token_bytes(t, 259, scratch, &bytes) == 13 && memcmp(bytes, "<|endoftext|>", 13) == 0 &&
            tokenizer_token_bytes(t, 258, scratch, &bytes) == 2 && memcmp(bytes, " a", 2) == 0 &&
            tokenizer_token_bytes(t, 999, scratch, &bytes) == 7 && memcmp(bytes, "<|999|>", 7) == 0,
        "token bytes: the added token's text, a merged token's raw bytes, <|id|> outside the vocabulary");

  /* written and read back: the same ids, and the same text when written again */
  char *written = tokenizer_to_json(t);
  tokenizer *back = written ? tokenizer_from_json(written, strlen(written), err, sizeof err) : NULL;
  CHECK(back != NULL, "tokenizer_to_json's text reads back: %s", err);
  if (back) {
    int32_t ids_back[64];
    const char *text = "abcab  ac ab\xff";
    size_t n1 = encode_str(t, text, ids), n2 = encode_str(back, text, ids_back);
    CHECK(n1 == n2 && memcmp(ids, ids_back, n1 * sizeof *ids) == 0, "same ids after the round trip");
    char *again = tokenizer_to_json(back);
    CHECK(again && strcmp(again, written) == 0, "written twice, the same tokenizer.json");
    free(again);
    CHECK(tokenizer_eot(back) == 259, "the end of text survives");
    tokenizer_free(back);
  }
  free(written);
  tokenizer *cut = tokenizer_from_json(json, strlen(json) - 10, err, sizeof err);
  CHECK(!cut && strstr(err, "the tokenizer.json text is not valid JSON"), "damaged text in memory: %s", err);
  tokenizer_free(cut);
  free(json);
  tokenizer_free(t);
}

/* decode(encode(x)) == x for random bytes (mostly invalid UTF-8), random
 * valid UTF-8 and long runs. */
static void test_round_trips(tokenizer *t, const char *name) {
  enum { N = 20000 };
  static char text[N];
  static int32_t ids[N];
  uint64_t s = 12345;
  int ok = 1;
  static const char *atoms[] = {"a", "b", " ", "\t", "\n", "'", "'s", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "1", "!"};
  for (int trial = 0; trial < 20; trial++) {
    for (int i = 0; i < N;) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      unsigned r = (unsigned)(s >> 33);
      if (trial % 2 == 0) { /* any byte */
        text[i++] = (char)r;
      } else { /* whole valid characters */
        const char *a = atoms[r % 12];
        for (size_t k = 0; a[k] && i < N; k++) text[i++] = a[k];
      }
    }
    size_t n = tokenizer_encode(t, text, N, ids);
    ok &= n <= N && round_trips(t, ids, n, text, N);
  }
  memset(text, ' ', N);
  text[N - 1] = 'x';
  size_t n = tokenizer_encode(t, text, N, ids);
  ok &= round_trips(t, ids, n, text, N);
  memset(text, 'a', N);
  n = tokenizer_encode(t, text, N, ids);
  ok &= round_trips(t, ids, n, text, N);
  CHECK(ok, "%s: decode(encode(x)) == x on random bytes, random UTF-8, 20000 spaces, 20000 letters", name);
}

/* tokenizer_load of a folder holding these files fails with a message that
 * holds each of the words. */
static void expect_refused(const char *what, const char *path, const char *word1, const char *word2) {
  char err[2048] = "";
  tokenizer *t = tokenizer_load(path, err, sizeof err);
  CHECK(!t && strstr(err, word1) && (!word2 || strstr(err, word2)) && !strchr(err, '\n'),
        "%s: refused naming '%s' and '%s' (got: %s)", what, word1, word2 ? word2 : "", err);
  printf("refused: %s\n", err); /* the log shows what a user would read */
  tokenizer_free(t);
}

static void drop_pre_tokenizer_regex(json_t *root) {
  json_object_set_new(root, "pre_tokenizer",
                      json_pack("{s:s, s:{s:s}, s:s}", "type", "Split", "pattern", "Regex", "(?i:'s|'t)", "behavior",
                                "Isolated"));
}
static void make_unigram(json_t *root) { json_object_set_new(json_object_get(root, "model"), "type", json_string("Unigram")); }
static void add_normalizer(json_t *root) { json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "NFC")); }
static void repeat_merge(json_t *root) { json_array_append_new(json_object_get(json_object_get(root, "model"), "merges"), json_string("a b")); }
static void unknown_merge(json_t *root) { json_array_append_new(json_object_get(json_object_get(root, "model"), "merges"), json_string("abc zz")); }
static void merged_missing(json_t *root) { json_array_append_new(json_object_get(json_object_get(root, "model"), "merges"), json_string("c d")); }
static void same_id(json_t *root) { json_object_set_new(json_object_get(json_object_get(root, "model"), "vocab"), "cd", json_integer(5)); }
static void drop_byte(json_t *root) { json_object_del(json_object_get(json_object_get(root, "model"), "vocab"), "z"); }

static void write_json(const char *name, void (*damage)(json_t *)) {
  char *text = small_json(damage);
  write_file(name, text, strlen(text));
  free(text);
}

static void test_errors(void) {
  expect_refused("a missing path", path_of("nowhere"), "nowhere", "No such file");
  mkdir(path_of("empty"), 0700);
  expect_refused("a folder without tokenizer files", path_of("empty"), "holds no tokenizer", "encoder.json + vocab.bpe");
  write_json("whole.json", NULL);
  char *text = small_json(NULL);
  write_file("truncated.json", text, strlen(text) / 2);
  free(text);
  expect_refused("a truncated tokenizer.json", path_of("truncated.json"), "truncated.json", "not valid JSON");
  static const struct {
    void (*damage)(json_t *);
    const char *word1, *word2;
  } cases[] = {
      {drop_pre_tokenizer_regex, "Split (pattern '(?i:'s|'t)')", "not GPT-2's ByteLevel"},
      {make_unigram, "Unigram", "not byte-level BPE"},
      {add_normalizer, "the normalizer NFC", NULL},
      {repeat_merge, "merge 4 ('a' 'b') repeats merge 1", NULL},
      {unknown_merge, "merge 4 ('abc' 'zz') names 'zz'", "not in the vocabulary"},
      {merged_missing, "merge 4 ('c' 'd') makes a token that is not in the vocabulary", NULL},
      {same_id, "id 5 is given to two tokens", NULL},
      {drop_byte, "lacks the token of the byte 0x7a", NULL},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    write_json("damaged.json", cases[c].damage);
    expect_refused(cases[c].word1, path_of("damaged.json"), cases[c].word1, cases[c].word2);
    expect_refused("... naming the file", path_of("damaged.json"), "damaged.json", NULL);
  }
  /* GPT-2's pair of files, damaged */
  mkdir(path_of("gpt2"), 0700);
  const char *encoder = "{\"a\": 0, \"b\": 1, \"ab\": 2";
  write_file("gpt2/encoder.json", encoder, strlen(encoder));
  write_file("gpt2/vocab.bpe", "#version: 0.2\na b\n", 18);
  expect_refused("a truncated encoder.json", path_of("gpt2"), "gpt2/encoder.json", "not valid JSON");
  encoder = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\xe4\xb8\xad\": 3}";
  write_file("gpt2/encoder.json", encoder, strlen(encoder));
  expect_refused("a token outside the byte alphabet", path_of("gpt2"), "encoder.json", "not spelled in GPT-2's byte alphabet");
  encoder = "{\"a\": 0, \"b\": 1, \"ab\": 2}";
  write_file("gpt2/encoder.json", encoder, strlen(encoder));
  write_file("gpt2/vocab.bpe", "a b\n", 4);
  expect_refused("vocab.bpe without its version line", path_of("gpt2"), "vocab.bpe", "#version: 0.2");
  write_file("gpt2/vocab.bpe", "#version: 0.2\na b\nab\n", 21);
  expect_refused("a truncated merge line", path_of("gpt2"), "vocab.bpe' line 3", "not two tokens");
  unlink(path_of("gpt2/vocab.bpe"));
  expect_refused("a missing vocab.bpe", path_of("gpt2"), "gpt2/vocab.bpe", "No such file");
  write_file("gpt2/vocab.bpe", "#version: 0.2\na b\n", 18);
  expect_refused("a vocabulary without all 256 bytes", path_of("gpt2"), "lacks the token of the byte", NULL);
  /* a folder with tokenizer.json is read from it */
  mkdir(path_of("hf"), 0700);
  write_json("hf/tokenizer.json", NULL);
  char err[1024] = "";
  tokenizer *t = tokenizer_load(path_of("hf"), err, sizeof err);
  CHECK(t && tokenizer_vocab_size(t) == 260, "a folder holding tokenizer.json loads: %s", err);
  tokenizer_free(t);
}

/* GPT-2's published files: ids every GPT-2 user knows. */
static void test_gpt2(const char *folder) {
  char err[4096] = "";
  tokenizer *t = tokenizer_load(folder, err, sizeof err);
  CHECK(t != NULL, "GPT-2's files load: %s", err);
  if (!t) return;
  CHECK(tokenizer_vocab_size(t) == 50257 && tokenizer_eot(t) == 50256, "GPT-2: 50257 ids, end of text 50256");
  CHECK(strcmp(tokenizer_description(t), "byte-level BPE (50257 ids)") == 0, "description '%s'", tokenizer_description(t));
  int32_t ids[64];
  size_t n = encode_str(t, "Hello world", ids);
  CHECK(n == 2 && ids[0] == 15496 && ids[1] == 995, "'Hello world' = 15496 995");
  n = encode_str(t, " the", ids);
  CHECK(n == 1 && ids[0] == 262, "' the' = 262");
  n = encode_str(t, "\n\n", ids);
  CHECK(n == 1 && ids[0] == 628, "two newlines = 628");
  test_round_trips(t, "GPT-2");
  char *json = tokenizer_to_json(t);
  tokenizer *back = json ? tokenizer_from_json(json, strlen(json), err, sizeof err) : NULL;
  CHECK(back && tokenizer_vocab_size(back) == 50257, "GPT-2 written as tokenizer.json reads back: %s", err);
  if (back) {
    n = encode_str(back, "Hello world", ids);
    CHECK(n == 2 && ids[0] == 15496 && ids[1] == 995, "... and encodes the same");
  }
  tokenizer_free(back);
  free(json);
  tokenizer_free(t);
  /* the same pair under Hugging Face's names */
  char target[600];
  mkdir(path_of("hf-names"), 0700);
  snprintf(target, sizeof target, "%s/encoder.json", folder);
  int linked = symlink(target, path_of("hf-names/vocab.json")) == 0;
  snprintf(target, sizeof target, "%s/vocab.bpe", folder);
  linked &= symlink(target, path_of("hf-names/merges.txt")) == 0;
  t = linked ? tokenizer_load(path_of("hf-names"), err, sizeof err) : NULL;
  CHECK(t && tokenizer_vocab_size(t) == 50257, "vocab.json + merges.txt load as GPT-2's pair: %s", err);
  tokenizer_free(t);
}

int main(void) {
  if (!mkdtemp(dir)) return 99;
  test_bytes_tokenizer();
  test_pretokenizer();
  test_small_bpe();
  char err[1024];
  char *json = small_json(NULL);
  tokenizer *small = tokenizer_from_json(json, strlen(json), err, sizeof err);
  free(json);
  if (small) test_round_trips(small, "small BPE");
  tokenizer_free(small);
  test_errors();
  const char *gpt2 = getenv("TESSERA_GPT2_TOKENIZER");
  if (gpt2 && gpt2[0]) test_gpt2(gpt2);
  else printf("note: TESSERA_GPT2_TOKENIZER unset: GPT-2's files not tested here\n");
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary("test_tokenizer");
}
