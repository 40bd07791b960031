/* ckpt_validate — the one check of a checkpoint's tensors against the model
 * that every reader runs before it uses a byte of them: `--resume`,
 * `--init-from`, `eval`, `sample`, `convert` and `ckpt info|verify`, so that
 * verify cannot pass a file a resume refuses (doc/checkpoint-format.md,
 * "What a reader guarantees").
 */
#ifndef TESSERA_CKPT_VALIDATE_H
#define TESSERA_CKPT_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint_file.h"
#include "registry.h"

/* Each of the first n_states states (1: the weights; OPT_N_STATES: with
 * Adam's moments) of every parameter of reg is a dataset of the parameter's
 * logical shape, fp32, with a checksum tiling in range and one CRC per tile
 * (ckpt_tensor_check). 0, or EXIT_IO_ERROR with the first mismatch in err. */
int ckpt_check_tensors(ckpt_file *f, const registry *reg, int n_states, char *err, size_t err_bytes);

/* The root attributes every reader relies on: `format` is tessera's,
 * `format_version` the one this tessera reads, `complete` is 1 (when
 * need_complete: `ckpt info` shows an incomplete file), `step` and
 * `optimizer_step` are integers in [0, CKPT_MAX_STEP] and equal (each
 * training step is one optimizer step, --init-from starts both at 0), and
 * `data_position` and `tokens`, where the file has them with `batch_size`
 * (and `seq_len`), are step × batch_size and step × batch_size × seq_len.
 * 0, or EXIT_IO_ERROR with the first violation in err. */
int ckpt_check_attributes(ckpt_file *f, bool need_complete, char *err, size_t err_bytes);

/* A resume goes on from where the file's data position is: the data order
 * is a pure function of step and batch_size, so a run of another
 * batch_size would skip or repeat sequences. 0, or EXIT_USER_ERROR with
 * the two batch sizes in err. (seq_len is part of the model shape, checked
 * with it; the learning-rate schedule may change: --steps extends a run.) */
int ckpt_check_schedule(ckpt_file *f, int64_t batch_size, char *err, size_t err_bytes);

/* The largest step a checkpoint may hold: tokens (step × batch × seq_len)
 * stay far from int64 overflow. */
#define CKPT_MAX_STEP ((int64_t)1 << 40)

#endif
