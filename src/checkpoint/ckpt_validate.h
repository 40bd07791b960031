/* ckpt_validate — the one check of a checkpoint's tensors against the model
 * that every reader runs before it uses a byte of them: `--resume`,
 * `--init-from`, `eval`, `sample`, `convert` and `ckpt info|verify`, so that
 * verify cannot pass a file a resume refuses (doc/checkpoint-format.md,
 * "What a reader guarantees").
 */
#ifndef TESSERA_CKPT_VALIDATE_H
#define TESSERA_CKPT_VALIDATE_H

#include <stddef.h>

#include "checkpoint_file.h"
#include "registry.h"

/* Each of the first n_states states (1: the weights; OPT_N_STATES: with
 * Adam's moments) of every parameter of reg is a dataset of the parameter's
 * logical shape, fp32, with a checksum tiling in range and one CRC per tile
 * (ckpt_tensor_check). 0, or EXIT_IO_ERROR with the first mismatch in err. */
int ckpt_check_tensors(ckpt_file *f, const registry *reg, int n_states, char *err, size_t err_bytes);

#endif
