/* prep_command — `tessera prep INPUT... -o PREFIX`: text files to a token
 * dataset (Megatron-LM indexed format, doc/data-format.md).
 *
 * Each input file is one document, or with --split-lines LINE, a line equal
 * to LINE ends a document (fortune files separate entries with "%"). Every
 * document is followed by the end-of-text token, as Megatron's
 * preprocess_data.py does with --append-eod. Runs as one plain process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "fail.h"
#include "indexed_writer.h"
#include "progress.h"
#include "tokenizer.h"

typedef struct prep_options {
  const char **inputs;
  int n_inputs;
  const char *output_prefix, *split_line;
  token_dtype dtype;
} prep_options;

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: tessera prep INPUT.txt... -o PREFIX [--split-lines LINE] [--dtype uint16|int32]\n"
          "  writes PREFIX.bin and PREFIX.idx (Megatron-LM indexed dataset), byte-level tokens,\n"
          "  end-of-text (id 256) after each document.\n"
          "  -o PREFIX            output prefix\n"
          "  --split-lines LINE   a line equal to LINE ends a document (default: one per file)\n"
          "  --dtype uint16|int32 token storage (default uint16)\n");
}

static void parse(int argc, char **argv, prep_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->dtype = TOKEN_DTYPE_U16;
  opt->inputs = xcalloc((size_t)argc, sizeof *opt->inputs, "input list");
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const int has_value = i + 1 < argc;
    if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) {
      if (!has_value) fail_collective(EXIT_USER_ERROR, "%s needs an output prefix", arg);
      opt->output_prefix = argv[++i];
    } else if (strcmp(arg, "--split-lines") == 0) {
      if (!has_value) fail_collective(EXIT_USER_ERROR, "--split-lines needs a line, e.g. %%");
      opt->split_line = argv[++i];
    } else if (strcmp(arg, "--dtype") == 0) {
      if (!has_value) fail_collective(EXIT_USER_ERROR, "--dtype needs uint16 or int32");
      const char *d = argv[++i];
      if (strcmp(d, "uint16") == 0) opt->dtype = TOKEN_DTYPE_U16;
      else if (strcmp(d, "int32") == 0) opt->dtype = TOKEN_DTYPE_I32;
      else fail_collective(EXIT_USER_ERROR, "--dtype must be uint16 or int32, got '%s'", d);
    } else if (arg[0] == '-' && arg[1] != '\0') {
      fail_collective(EXIT_USER_ERROR, "prep: unknown option '%s' (see `tessera prep --help`)", arg);
    } else {
      opt->inputs[opt->n_inputs++] = arg;
    }
  }
  if (opt->n_inputs == 0)
    fail_collective(EXIT_USER_ERROR, "prep: no input files (usage: tessera prep INPUT.txt... -o PREFIX)");
  if (!opt->output_prefix)
    fail_collective(EXIT_USER_ERROR, "prep: no output given: add -o PREFIX");
}

/* Reads a whole file; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *n_bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t capacity = 1 << 16, used = 0;
  char *data = xmalloc(capacity, "input text");
  size_t got;
  while ((got = fread(data + used, 1, capacity - used, f)) > 0) {
    used += got;
    if (used == capacity) {
      capacity *= 2;
      char *grown = realloc(data, capacity);
      if (!grown) fail_local(EXIT_USER_ERROR, "out of memory reading '%s'", path);
      data = grown;
    }
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    free(data);
    errno = EIO;
    return NULL;
  }
  *n_bytes = used;
  return data;
}


static void add_document(indexed_writer *w, const char *text, size_t n_bytes, int32_t *scratch) {
  static tokenizer *bytes_tokenizer;
  if (!bytes_tokenizer) bytes_tokenizer = tokenizer_bytes();
  char err[MESSAGE_BYTES];
  size_t n = tokenizer_encode(bytes_tokenizer, text, n_bytes, scratch);
  scratch[n++] = tokenizer_eot(bytes_tokenizer);
  if (indexed_writer_add_document(w, scratch, n, err, sizeof err) != 0) {
    indexed_writer_discard(w);
    fail_collective(EXIT_IO_ERROR, "prep: %s", err);
  }
}

/* Splits text at lines equal to `separator` (the separator lines dropped). */
static void add_split_documents(indexed_writer *w, const char *text, size_t n_bytes,
                                const char *separator, int32_t *scratch) {
  const size_t sep_len = strlen(separator);
  size_t doc_start = 0, line_start = 0;
  while (line_start < n_bytes) {
    const char *newline = memchr(text + line_start, '\n', n_bytes - line_start);
    size_t line_end = newline ? (size_t)(newline - text) : n_bytes;
    size_t next = newline ? line_end + 1 : n_bytes;
    if (line_end - line_start == sep_len && memcmp(text + line_start, separator, sep_len) == 0) {
      if (line_start > doc_start) add_document(w, text + doc_start, line_start - doc_start, scratch);
      doc_start = next;
    }
    line_start = next;
  }
  if (n_bytes > doc_start) add_document(w, text + doc_start, n_bytes - doc_start, scratch);
}

int prep_command(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_usage(stdout);
      return EXIT_OK;
    }
  prep_options opt;
  parse(argc, argv, &opt);
  const double start = now_seconds();
  char err[MESSAGE_BYTES];
  /* read every input before creating anything: a missing file leaves no output */
  char **texts = xcalloc((size_t)opt.n_inputs, sizeof *texts, "inputs");
  size_t *sizes = xcalloc((size_t)opt.n_inputs, sizeof *sizes, "inputs");
  size_t largest = 0;
  uint64_t total_bytes = 0;
  for (int i = 0; i < opt.n_inputs; i++) {
    texts[i] = read_file(opt.inputs[i], &sizes[i]);
    if (!texts[i])
      fail_collective(EXIT_USER_ERROR, "prep: cannot read input '%s': %s", opt.inputs[i],
                      strerror(errno));
    if (sizes[i] > largest) largest = sizes[i];
    total_bytes += sizes[i];
  }
  indexed_writer *w = indexed_writer_open(opt.output_prefix, opt.dtype, err, sizeof err);
  if (!w) fail_collective(EXIT_IO_ERROR, "prep: %s", err);
  int32_t *scratch = xmalloc((largest + 1) * sizeof *scratch, "token scratch");
  for (int i = 0; i < opt.n_inputs; i++) {
    if (opt.split_line) add_split_documents(w, texts[i], sizes[i], opt.split_line, scratch);
    else if (sizes[i] > 0) add_document(w, texts[i], sizes[i], scratch);
    free(texts[i]);
  }
  const uint64_t n_tokens = indexed_writer_n_tokens(w), n_docs = indexed_writer_n_documents(w);
  if (n_docs == 0) {
    indexed_writer_discard(w);
    fail_collective(EXIT_USER_ERROR, "prep: the inputs hold no text");
  }
  if (indexed_writer_close(w, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "prep: %s", err);
  const double seconds = now_seconds() - start;
  printf("prep: %d file(s), %.2f MB of text -> %llu documents, %llu tokens in %s.bin/.idx "
         "(%.1f M tokens/s)\n",
         opt.n_inputs, (double)total_bytes / 1e6, (unsigned long long)n_docs,
         (unsigned long long)n_tokens, opt.output_prefix,
         seconds > 0 ? (double)n_tokens / seconds / 1e6 : 0.0);
  free(scratch);
  free(texts);
  free(sizes);
  free(opt.inputs);
  return EXIT_OK;
}
