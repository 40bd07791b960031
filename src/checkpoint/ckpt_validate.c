/* ckpt_validate — see ckpt_validate.h. */
#include "ckpt_validate.h"

#include <stdio.h>
#include <string.h>

#include "ckpt_names.h"
#include "fail.h"

/* A step-like attribute: an integer in [0, CKPT_MAX_STEP]. 0 or -1 with err. */
static int read_step(ckpt_file *f, const char *name, int64_t *value, char *err, size_t err_bytes) {
  if (ckpt_attr_read_i64(f, name, value) != 0) {
    snprintf(err, err_bytes, "checkpoint '%s' is damaged: attribute `%s` is missing or not an integer", f->path,
             name);
    return -1;
  }
  if (*value < 0 || *value > CKPT_MAX_STEP) {
    snprintf(err, err_bytes, "checkpoint '%s' is damaged: %s %lld is out of range [0, 2^40]", f->path, name,
             (long long)*value);
    return -1;
  }
  return 0;
}

/* step, optimizer_step and the data position agree. 0 or -1 with err. */
static int check_steps(ckpt_file *f, char *err, size_t err_bytes) {
  int64_t step, optimizer_step, position, batch;
  if (read_step(f, "step", &step, err, err_bytes) || read_step(f, "optimizer_step", &optimizer_step, err, err_bytes))
    return -1;
  if (optimizer_step != step) {
    snprintf(err, err_bytes, "checkpoint '%s' is damaged: optimizer_step %lld differs from step %lld (each step is "
             "one optimizer step)", f->path, (long long)optimizer_step, (long long)step);
    return -1;
  }
  if (ckpt_attr_read_i64(f, "batch_size", &batch) != 0) return 0; /* no run state: nothing to agree with */
  if (ckpt_attr_read_i64(f, "data_position", &position) == 0 &&
      (batch < 1 || batch > ((int64_t)1 << 22) || position != step * batch)) {
    snprintf(err, err_bytes, "checkpoint '%s' is damaged: data_position %lld is not step %lld x batch_size %lld",
             f->path, (long long)position, (long long)step, (long long)batch);
    return -1;
  }
  /* tokens = step x batch_size x seq_len (batch_size is bounded above, the
   * step by CKPT_MAX_STEP and seq_len here: the product stays in range) */
  int64_t tokens, seq_len;
  if (ckpt_attr_read_i64(f, "tokens", &tokens) == 0 && ckpt_attr_read_i64(f, "seq_len", &seq_len) == 0 &&
      (seq_len < 1 || seq_len > ((int64_t)1 << 20) || tokens != step * batch * seq_len)) {
    snprintf(err, err_bytes,
             "checkpoint '%s' is damaged: tokens %lld is not step %lld x batch_size %lld x seq_len %lld",
             f->path, (long long)tokens, (long long)step, (long long)batch, (long long)seq_len);
    return -1;
  }
  return 0;
}

int ckpt_check_schedule(ckpt_file *f, int64_t batch_size, char *err, size_t err_bytes) {
  int64_t saved_batch, step;
  if (ckpt_attr_read_i64(f, "batch_size", &saved_batch) != 0 || ckpt_attr_read_i64(f, "step", &step) != 0 ||
      saved_batch == batch_size)
    return 0;
  snprintf(err, err_bytes,
           "--resume: checkpoint '%s' was trained with batch_size %lld (%lld sequences read by step %lld); this "
           "run's batch_size %lld would go on from sequence %lld, skipping or repeating data: resume with "
           "batch_size %lld",
           f->path, (long long)saved_batch, (long long)(step * saved_batch), (long long)step, (long long)batch_size,
           (long long)(step * batch_size), (long long)saved_batch);
  return EXIT_USER_ERROR;
}

int ckpt_check_attributes(ckpt_file *f, bool need_complete, char *err, size_t err_bytes) {
  char format[64] = "";
  int64_t version = 0, complete = 0;
  if (ckpt_attr_read_str(f, "format", format, sizeof format) != 0 || strcmp(format, CKPT_FORMAT_NAME) != 0) {
    snprintf(err, err_bytes, "'%s' is an HDF5 file but not a tessera checkpoint", f->path);
    return EXIT_IO_ERROR;
  }
  if (ckpt_attr_read_i64(f, "format_version", &version) != 0) {
    snprintf(err, err_bytes, "checkpoint '%s' has no integer format_version; this tessera reads version %d", f->path,
             CKPT_FORMAT_VERSION);
    return EXIT_IO_ERROR;
  }
  if (version != CKPT_FORMAT_VERSION) {
    snprintf(err, err_bytes, "checkpoint '%s' has format version %lld; this tessera reads version %d", f->path,
             (long long)version, CKPT_FORMAT_VERSION);
    return EXIT_IO_ERROR;
  }
  if (need_complete && (ckpt_attr_read_i64(f, "complete", &complete) != 0 || complete != 1)) {
    snprintf(err, err_bytes, "checkpoint '%s' is incomplete (no `complete` marker): the save was interrupted",
             f->path);
    return EXIT_IO_ERROR;
  }
  return check_steps(f, err, err_bytes) ? EXIT_IO_ERROR : 0;
}

int ckpt_check_tensors(ckpt_file *f, const registry *reg, int n_states, char *err, size_t err_bytes) {
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    for (int s = 0; s < n_states; s++) {
      char tensor[CKPT_TENSOR_PATH_BYTES];
      ckpt_tensor_path(tensor, p->name, (optimizer_state)s);
      const int status = ckpt_tensor_check(f, tensor, p->n_dims, p->shape, err, err_bytes);
      if (status) return status;
    }
  }
  return 0;
}
