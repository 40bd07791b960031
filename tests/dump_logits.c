/* dump_logits — test-only: tessera's logits for the first T tokens of a
 * token file, from a model in any format tessera reads (src/convert), on
 * one process with the CPU backend. Writes T × V fp32 values, row t the
 * logits after tokens[0..t] (one forward per prefix through
 * model_forward_last_logits: causal attention makes them the rows of one
 * forward over all T).
 *   dump_logits MODEL TOKENS T OUT
 */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "fail.h"
#include "model.h"
#include "model_io.h"
#include "token_dataset.h"

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: dump_logits MODEL TOKENS T OUT\n");
    return EXIT_USER_ERROR;
  }
  const int T = atoi(argv[3]);
  char err[MESSAGE_BYTES];
  int status = 0;
  model_source *source = model_source_open(argv[1], &status, err, sizeof err);
  if (!source) fail_collective(status, "%s", err);
  const model_shape shape = *model_source_shape(source);
  ENSURE(T >= 1 && T <= shape.seq_len, "T %d", T);
  model m;
  model_create(&m, backend_cpu(), shape, 1, shape.seq_len, NULL);
  const registry *reg = &m.layout.reg; /* one rank, no tp: local tensors are the logical ones */
  float *host = xcalloc(reg->n_local_total, sizeof *host, "weights");
  for (int k = 0; k < reg->n_params; k++)
    if ((status = model_source_read(source, reg->params[k].name, host + reg->params[k].offset, err, sizeof err)))
      fail_collective(status, "%s", err);
  model_source_close(source);
  model_load_params(&m, host);
  free(host);
  token_dataset ds;
  if ((status = dataset_open(&ds, argv[2], err, sizeof err))) fail_collective(status, "%s", err);
  int32_t *tokens = xmalloc((size_t)(T + 1) * sizeof *tokens, "tokens");
  dataset_read_window(&ds, 0, T, tokens);
  float *logits = xmalloc((size_t)shape.vocab_size * sizeof *logits, "logits");
  FILE *out = fopen(argv[4], "wb");
  if (!out) fail_collective(EXIT_IO_ERROR, "cannot create '%s'", argv[4]);
  for (int t = 1; t <= T; t++) {
    model_forward_last_logits(&m, tokens, t, logits);
    if (fwrite(logits, sizeof *logits, (size_t)shape.vocab_size, out) != (size_t)shape.vocab_size)
      fail_collective(EXIT_IO_ERROR, "cannot write '%s'", argv[4]);
  }
  if (fclose(out) != 0) fail_collective(EXIT_IO_ERROR, "cannot write '%s'", argv[4]);
  free(logits);
  free(tokens);
  dataset_close(&ds);
  model_free(&m);
  return 0;
}
