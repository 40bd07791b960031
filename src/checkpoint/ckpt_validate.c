/* ckpt_validate — see ckpt_validate.h. */
#include "ckpt_validate.h"

#include "ckpt_names.h"

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
