/* prep_command — `tessera prep [--tokenizer PATH] INPUT... -o PREFIX`: text
 * files to a token dataset (Megatron-LM indexed format, doc/data-format.md)
 * and, for a tokenizer other than bytes, its sidecar PREFIX.tokenizer.json.
 *
 * Under mpirun the ranks tokenize disjoint parts of the input, balanced by
 * bytes with document boundaries respected (prep_documents.h), write their
 * tokens in rank order into one file (prep_parallel.h), and rank 0 writes
 * the index: the dataset's bytes are the same for any number of ranks.
 * Nothing appears under PREFIX unless every rank succeeded. Without mpirun
 * it runs as one process.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_settings.h"
#include "clock.h"
#include "commands.h"
#include "dataset_tokenizer.h"
#include "fail.h"
#include "indexed_writer.h"
#include "prep_documents.h"
#include "prep_parallel.h"
#include "prep_tokens.h"
#include "runtime.h"
#include "tokenizer.h"

typedef struct prep_options {
  prep_input *inputs;
  int n_inputs;
  const char *output_prefix, *split_line, *tokenizer_path;
  token_dtype dtype;
  bool dtype_given;
} prep_options;

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: tessera prep [--tokenizer PATH] INPUT.txt... -o PREFIX [--split-lines LINE]\n"
          "                    [--dtype uint16|int32]\n"
          "  writes PREFIX.bin and PREFIX.idx (Megatron-LM indexed dataset) and, with a tokenizer,\n"
          "  PREFIX.tokenizer.json; end-of-text after each document. Run under mpirun to tokenize\n"
          "  on several ranks (the same dataset for any number).\n"
          "  -o PREFIX            output prefix\n"
          "  --tokenizer PATH     GPT-2's encoder.json + vocab.bpe folder, or a tokenizer.json\n"
          "                       (file or folder); default: bytes (ids 0-255, end-of-text 256)\n"
          "  --split-lines LINE   a line equal to LINE ends a document (default: one per file)\n"
          "  --dtype uint16|int32 token storage (default: uint16 when the vocabulary fits)\n");
}

static void parse(int argc, char **argv, prep_options *opt) {
  memset(opt, 0, sizeof *opt);
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
    } else if (strcmp(arg, "--tokenizer") == 0) {
      if (!has_value) fail_collective(EXIT_USER_ERROR, "--tokenizer needs a folder or a tokenizer.json");
      opt->tokenizer_path = argv[++i];
    } else if (strcmp(arg, "--dtype") == 0) {
      if (!has_value) fail_collective(EXIT_USER_ERROR, "--dtype needs uint16 or int32");
      const char *d = argv[++i];
      if (strcmp(d, "uint16") == 0) opt->dtype = TOKEN_DTYPE_U16;
      else if (strcmp(d, "int32") == 0) opt->dtype = TOKEN_DTYPE_I32;
      else fail_collective(EXIT_USER_ERROR, "--dtype must be uint16 or int32, got '%s'", d);
      opt->dtype_given = true;
    } else if (arg[0] == '-' && arg[1] != '\0') {
      fail_collective(EXIT_USER_ERROR, "prep: unknown option '%s' (see `tessera prep --help`)", arg);
    } else {
      opt->inputs[opt->n_inputs++].path = arg;
    }
  }
  if (opt->n_inputs == 0)
    fail_collective(EXIT_USER_ERROR, "prep: no input files (usage: tessera prep INPUT.txt... -o PREFIX)");
  if (!opt->output_prefix)
    fail_collective(EXIT_USER_ERROR, "prep: no output given: add -o PREFIX");
}

/* Every rank loads the same tokenizer and picks the storage its ids fit. */
static tokenizer *load_tokenizer(prep_options *opt) {
  char err[MESSAGE_BYTES] = "";
  tokenizer *t = opt->tokenizer_path ? tokenizer_load(opt->tokenizer_path, err, sizeof err) : tokenizer_bytes();
  if (!t && !err[0]) snprintf(err, sizeof err, "out of memory for the bytes tokenizer");
  int status = prep_agree(t ? 0 : EXIT_USER_ERROR, err, sizeof err);
  if (status) fail_collective(status, "prep: tokenizer '%s': %s", opt->tokenizer_path ? opt->tokenizer_path : "bytes", err);
  const int vocab = tokenizer_vocab_size(t);
  if (tokenizer_eot(t) < 0)
    fail_collective(EXIT_USER_ERROR, "prep: the tokenizer %s has no end-of-text token to end documents with",
                    tokenizer_description(t));
  if (opt->dtype_given && opt->dtype == TOKEN_DTYPE_U16 && vocab > 65536)
    fail_collective(EXIT_USER_ERROR, "prep: --dtype uint16 holds ids below 65536, but the tokenizer has %d ids: "
                    "use --dtype int32 (or leave --dtype out)", vocab);
  if (!opt->dtype_given) opt->dtype = vocab <= 65536 ? TOKEN_DTYPE_U16 : TOKEN_DTYPE_I32;
  return t;
}

/* This rank's share of the concatenated text: [total·r/N, total·(r+1)/N). */
static uint64_t share_edge(uint64_t total, int r, int n) {
  return total / (uint64_t)n * (uint64_t)r + total % (uint64_t)n * (uint64_t)r / (uint64_t)n;
}

/* Writes the temporary files of the whole job; the status every rank agrees on. */
static int write_temporaries(const prep_options *opt, const tokenizer *t, const prep_tokens *p, int rank,
                             const indexed_temp_paths *tmp, uint64_t *n_docs, char *err, size_t err_bytes) {
  uint64_t total_bytes = 0;
  int status = prep_write_in_rank_order(tmp->bin, p->bytes, p->n_bytes, &total_bytes, err, err_bytes);
  status = prep_agree(status, err, err_bytes);
  if (status) return status;
  int32_t *lengths = prep_gather_lengths(p->lengths, p->n_documents, n_docs);
  if (rank == 0) {
    status = indexed_write_index(tmp->idx, opt->dtype, lengths, *n_docs, err, err_bytes) ? EXIT_IO_ERROR : 0;
    if (!status && tokenizer_kind_of(t) != TOKENIZER_BYTES)
      status = dataset_sidecar_write(tmp->sidecar, t, err, err_bytes) ? EXIT_IO_ERROR : 0;
    if (!status && indexed_publish(opt->output_prefix, tmp, tokenizer_kind_of(t) != TOKENIZER_BYTES, err, err_bytes))
      status = EXIT_IO_ERROR;
    if (status) indexed_discard(tmp);
  }
  free(lengths);
  return prep_agree(status, err, err_bytes);
}

static void print_summary(const prep_options *opt, const tokenizer *t, uint64_t text_bytes, uint64_t n_docs,
                          uint64_t n_tokens, double seconds, int n_ranks) {
  printf("prep: %d file(s), %.2f MB of text -> %llu documents, %llu tokens (%s, %s) in %s.bin/.idx%s; "
         "%.1f MB/s on %d rank%s\n",
         opt->n_inputs, (double)text_bytes / 1e6, (unsigned long long)n_docs, (unsigned long long)n_tokens,
         tokenizer_description(t), opt->dtype == TOKEN_DTYPE_U16 ? "uint16" : "int32", opt->output_prefix,
         tokenizer_kind_of(t) == TOKENIZER_BYTES ? "" : "/.tokenizer.json",
         seconds > 0 ? (double)text_bytes / 1e6 / seconds : 0.0, n_ranks, n_ranks == 1 ? "" : "s");
}

int prep_command(int argc, char **argv) {
  if (cli_asks_for_help(argc, argv)) {
    print_usage(stdout);
    return EXIT_OK;
  }
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  prep_options opt;
  parse(argc, argv, &opt);
  const double start = now_seconds();
  tokenizer *t = load_tokenizer(&opt);
  char err[MESSAGE_BYTES] = "";
  int status = prep_agree(prep_inputs_map(opt.inputs, opt.n_inputs, err, sizeof err), err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  uint64_t text_bytes = 0;
  for (int i = 0; i < opt.n_inputs; i++) text_bytes += opt.inputs[i].n_bytes;
  const uint64_t lo = share_edge(text_bytes, rt.world_rank, rt.world_size),
                 hi = share_edge(text_bytes, rt.world_rank + 1, rt.world_size);
  prep_tokens p;
  prep_tokens_init(&p, t, opt.dtype, hi - lo, rt.world_rank == 0);
  prep_for_each_document(opt.inputs, opt.n_inputs, opt.split_line, lo, hi, prep_tokens_add_document, &p);
  prep_inputs_unmap(opt.inputs, opt.n_inputs);
  prep_quiet_barrier();
  status = prep_agree(p.status, p.err, sizeof p.err);
  if (status) fail_collective(status, "%s", p.err);
  const uint64_t n_tokens = prep_sum(p.n_tokens);
  if (prep_sum(p.n_documents) == 0) fail_collective(EXIT_USER_ERROR, "prep: the inputs hold no text");
  indexed_temp_paths tmp;
  indexed_temp_paths_of(opt.output_prefix, prep_shared_tag(), &tmp);
  uint64_t n_docs = 0;
  status = write_temporaries(&opt, t, &p, rt.world_rank, &tmp, &n_docs, err, sizeof err);
  if (status) {
    if (rt.world_rank == 0) indexed_discard(&tmp);
    fail_collective(status, "%s", err);
  }
  if (rt.world_rank == 0)
    print_summary(&opt, t, text_bytes, n_docs, n_tokens, now_seconds() - start, rt.world_size);
  prep_tokens_free(&p);
  tokenizer_free(t);
  free(opt.inputs);
  runtime_finalize();
  return EXIT_OK;
}
