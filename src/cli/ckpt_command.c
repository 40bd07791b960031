/* ckpt_command — `tessera ckpt info|verify PATH`: what a checkpoint holds,
 * and whether it is complete and intact. One process, no MPI job needed.
 *
 * info prints the run state stored in the attributes, the layout that saved
 * it, the tokenizer it carries and every tensor with its shape. A
 * weights-only file (tessera convert) holds the `weight` state only, and is
 * checked for that. verify checks the format marker and the `complete`
 * marker, that every tensor the model's shape calls for is there with its
 * logical shape, and reads every byte of every tensor, checking each tile's
 * CRC-32C, and of the tokenizer. Exit status 0 when the
 * checkpoint is good, 2 when it is damaged or incomplete, 1 for a bad path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "checkpoint_file.h"
#include "ckpt_names.h"
#include "ckpt_tokenizer.h"
#include "ckpt_validate.h"
#include "commands.h"
#include "fail.h"
#include "model.h"

static int64_t attr_i64(ckpt_file *f, const char *name) {
  int64_t v = -1;
  ckpt_attr_read_i64(f, name, &v);
  return v;
}

static void print_shape(int n_dims, const int64_t *shape) {
  printf("[");
  for (int d = 0; d < n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)shape[d]);
  printf("]");
}

static int usage(int argc, char **argv) {
  const bool help = argc >= 2 && strcmp(argv[1], "--help") == 0;
  fprintf(help ? stdout : stderr,
          "usage: tessera ckpt info PATH     what a checkpoint holds\n"
          "       tessera ckpt verify PATH   is it complete and intact (reads every tensor)\n"
          "PATH: a checkpoint file, or a save directory (its `latest`)\n");
  return help ? EXIT_OK : EXIT_USER_ERROR;
}

/* The run state in the attributes and the layout that saved it. */
static void print_info(ckpt_file *f, const char *path, const model_shape *shape, int64_t complete, bool weights_only) {
  char text[256] = "";
  struct stat st;
  stat(path, &st);
  ckpt_attr_read_str(f, "tessera_version", text, sizeof text);
  printf("checkpoint %s (%.1f MB), format version %lld, written by tessera %s%s\n", path, (double)st.st_size / 1e6,
         (long long)attr_i64(f, "format_version"), text, complete == 1 ? "" : " — INCOMPLETE");
  printf("step %lld, %lld tokens, data position %lld samples, optimizer step %lld\n", (long long)attr_i64(f, "step"),
         (long long)attr_i64(f, "tokens"), (long long)attr_i64(f, "data_position"),
         (long long)attr_i64(f, "optimizer_step"));
  char description[MESSAGE_BYTES];
  model_shape_describe(shape, description, sizeof description);
  printf("model: %d layers, %d heads, d_model %d, vocab %d, seq_len %d; %s\n", shape->n_layer, shape->n_head,
         shape->d_model, shape->vocab_size, shape->seq_len, description);
  if (weights_only) {
    printf("weights only (written by tessera convert): start training from it with --init-from\n");
    return;
  }
  printf("saved by: %lld ranks = dp %lld x tp %lld x pp %lld x sp %lld, ZeRO %lld\n",
         (long long)attr_i64(f, "saved_world"), (long long)attr_i64(f, "saved_dp"), (long long)attr_i64(f, "saved_tp"),
         (long long)attr_i64(f, "saved_pp"), (long long)attr_i64(f, "saved_sp"), (long long)attr_i64(f, "saved_zero"));
}

/* The tokenizer the checkpoint carries: read (its CRC checked) and parsed;
 * info names it. */
static void check_tokenizer(ckpt_file *f, bool verify) {
  char err[MESSAGE_BYTES] = "";
  tokenizer *t = ckpt_read_tokenizer(f, err, sizeof err);
  if (!t) fail_collective(EXIT_IO_ERROR, "%s", err);
  if (!verify)
    printf("tokenizer: %s%s\n", tokenizer_description(t),
           tokenizer_kind_of(t) == TOKENIZER_BYTES ? " (none carried: trained on bytes)" : ", carried as " CKPT_TOKENIZER_DATASET);
  tokenizer_free(t);
}

/* After ckpt_check_tensors (each state of every tensor there, of its
 * logical shape, type and tiling): verify reads every byte of p's states
 * (each tile's CRC checked), info prints the shape. */
static void check_tensor(ckpt_file *f, const param_spec *p, bool verify, int n_states) {
  for (int s = 0; s < n_states; s++) {
    char tensor[CKPT_TENSOR_PATH_BYTES], err[MESSAGE_BYTES];
    ckpt_tensor_path(tensor, p->name, (optimizer_state)s);
    if (verify) {
      float *data = xmalloc((size_t)p->n_logical * sizeof *data, "verify buffer");
      int64_t start[4] = {0, 0, 0, 0};
      if (ckpt_tensor_read(f, tensor, p->n_dims, start, p->shape, data, err, sizeof err))
        fail_collective(EXIT_IO_ERROR, "%s", err);
      free(data);
    } else if (s == OPT_MASTER) {
      printf("  %-28s ", p->name);
      print_shape(p->n_dims, p->shape);
      printf(n_states == 1 ? "  (weight)\n" : "  (weight, adam_m, adam_v)\n");
    }
  }
}

int ckpt_command(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "info") != 0 && strcmp(argv[1], "verify") != 0)) return usage(argc, argv);
  const bool verify = strcmp(argv[1], "verify") == 0;
  char path[JOINED_PATH_BYTES], err[MESSAGE_BYTES];
  int status = checkpoint_path_of(argv[2], path, sizeof path, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  ckpt_file f;
  status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  /* the readers' checks (resume, sample, convert run the same); info shows an incomplete file */
  if (ckpt_check_attributes(&f, verify, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  model_shape shape;
  if (ckpt_read_model_shape(&f, &shape, err, sizeof err) != 0)
    fail_collective(EXIT_IO_ERROR, "checkpoint '%s' has no valid model shape attributes: %s", path, err);
  const int64_t complete = attr_i64(&f, "complete");
  registry reg;
  registry_init(&reg, 0, 1);
  model_register(&reg, &shape, NULL);
  const bool weights_only = ckpt_is_weights_only(&f);
  const int n_states = weights_only ? 1 : OPT_N_STATES;
  if (!verify) print_info(&f, path, &shape, complete, weights_only);
  check_tokenizer(&f, verify);
  /* the readers' one check (resume, sample, convert run the same) */
  if (ckpt_check_tensors(&f, &reg, n_states, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  int64_t n_params = 0;
  for (int k = 0; k < reg.n_params; k++) {
    n_params += reg.params[k].n_logical;
    check_tensor(&f, &reg.params[k], verify, n_states);
  }
  if (verify) printf("%s: complete, %d tensors x %d state%s, %lld parameters, every checksum good\n", path,
                     reg.n_params, n_states, n_states == 1 ? " (weights only)" : "s", (long long)n_params);
  else printf("%d tensors, %lld parameters\n", reg.n_params, (long long)n_params);
  registry_free(&reg);
  ckpt_file_close(&f);
  return EXIT_OK;
}
