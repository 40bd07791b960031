/* sample_command — `tessera sample --ckpt PATH --prompt TEXT [--tokens N]
 * [--top-k K] [--seed S] [--tokenizer PATH]`: generate text from a
 * checkpoint on one process with the CPU backend. The checkpoint's logical
 * tensors are the model whatever layout trained it, so one rank reads them
 * whole. The prompt is encoded and the text decoded with the tokenizer the
 * checkpoint carries (bytes when it carries none), or --tokenizer's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "checkpoint.h"
#include "checkpoint_file.h"
#include "ckpt_names.h"
#include "ckpt_validate.h"
#include "ckpt_tokenizer.h"
#include "cli_settings.h"
#include "commands.h"
#include "fail.h"
#include "model.h"
#include "sampler.h"

/* --tokenizer's, else the one the checkpoint carries (bytes when none);
 * one that does not fit the model is refused. */
static tokenizer *sample_tokenizer(ckpt_file *f, const char *tokenizer_path, int vocab_size) {
  char err[MESSAGE_BYTES] = "";
  tokenizer *tok = NULL;
  if (tokenizer_path) {
    tok = tokenizer_load(tokenizer_path, err, sizeof err);
    if (!tok) fail_collective(EXIT_USER_ERROR, "sample: --tokenizer: %s", err);
  } else {
    tok = ckpt_read_tokenizer(f, err, sizeof err);
    if (!tok) fail_collective(EXIT_IO_ERROR, "%s", err);
  }
  if (tokenizer_vocab_size(tok) > vocab_size)
    fail_collective(EXIT_USER_ERROR, "sample: the tokenizer %s has more ids than the model's vocab_size %d: it is "
                    "not the model's tokenizer", tokenizer_description(tok), vocab_size);
  return tok;
}

/* the bounds of the numeric options: as many tokens as the key sample_tokens
 * allows, and top-k up to the largest vocab_size a model may have */
#define SAMPLE_MAX_TOKENS (1 << 20)
#define SAMPLE_MAX_TOP_K (1 << 24)

int sample_command(int argc, char **argv) {
  const char *ckpt = NULL, *prompt = "The ", *tokenizer_path = NULL;
  int n_tokens = 200, top_k = 0;
  int64_t seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      printf("usage: tessera sample --ckpt PATH [--prompt TEXT] [--tokens N] [--top-k K] [--seed S]\n"
             "                      [--tokenizer PATH]\n"
             "--ckpt PATH: a checkpoint file, or a save directory (its `latest`)\n"
             "--tokenizer PATH: GPT-2's encoder.json + vocab.bpe folder or a tokenizer.json, instead of the\n"
             "  tokenizer the checkpoint carries (bytes when it carries none)\n");
      return EXIT_OK;
    }
    if (!value) fail_collective(EXIT_USER_ERROR, "sample: option '%s' needs a value", arg);
    if (strcmp(arg, "--ckpt") == 0) ckpt = value;
    else if (strcmp(arg, "--prompt") == 0) prompt = value;
    else if (strcmp(arg, "--tokens") == 0) n_tokens = (int)cli_int_option("sample", arg, value, 0, SAMPLE_MAX_TOKENS);
    else if (strcmp(arg, "--top-k") == 0) top_k = (int)cli_int_option("sample", arg, value, 0, SAMPLE_MAX_TOP_K);
    else if (strcmp(arg, "--seed") == 0) seed = cli_int_option("sample", arg, value, 0, INT64_MAX);
    else if (strcmp(arg, "--tokenizer") == 0) tokenizer_path = value;
    else fail_collective(EXIT_USER_ERROR, "sample: unknown option '%s' (see `tessera sample --help`)", arg);
    i++;
  }
  if (!ckpt) fail_collective(EXIT_USER_ERROR, "sample: name a checkpoint with --ckpt PATH");
  char path[JOINED_PATH_BYTES], err[MESSAGE_BYTES];
  int status = checkpoint_path_of(ckpt, path, sizeof path, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  ckpt_file f;
  status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  model_shape shape;
  if (ckpt_check_attributes(&f, true, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  if (ckpt_read_model_shape(&f, &shape, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  tokenizer *tok = sample_tokenizer(&f, tokenizer_path, shape.vocab_size);
  model m;
  model_create(&m, backend_cpu(), shape, 1, shape.seq_len, NULL);
  const registry *reg = &m.layout.reg;
  if (ckpt_check_tensors(&f, reg, 1, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  float *host = xcalloc(reg->n_local_total, sizeof *host, "checkpoint weights");
  for (int k = 0; k < reg->n_params; k++) { /* one rank: local shards are the logical tensors */
    const param_spec *p = &reg->params[k];
    char tensor[CKPT_TENSOR_PATH_BYTES];
    ckpt_tensor_path(tensor, p->name, OPT_MASTER);
    int64_t start[4] = {0, 0, 0, 0};
    if (ckpt_tensor_read(&f, tensor, p->n_dims, start, p->shape, host + p->offset, err, sizeof err))
      fail_collective(EXIT_IO_ERROR, "%s", err);
  }
  ckpt_file_close(&f);
  model_load_params(&m, host);
  free(host);
  sampler_generate_text(sampler_model_logits, &m, shape.seq_len, shape.vocab_size, tok, prompt, n_tokens, top_k,
                        (uint64_t)seed, stdout);
  tokenizer_free(tok);
  model_free(&m);
  return EXIT_OK;
}
