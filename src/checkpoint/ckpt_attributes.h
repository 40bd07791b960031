/* ckpt_attributes — a checkpoint's root attributes (doc/checkpoint-format.md):
 * the model shape, and the run that saved it (step, data position,
 * optimizer settings and step, learning-rate schedule, the saving layout).
 * A checkpoint written before a model option existed lacks its attribute
 * and reads as GPT-2's choice (layernorm, GELU, learned positions, biases,
 * softmax attention).
 */
#ifndef TESSERA_CKPT_ATTRIBUTES_H
#define TESSERA_CKPT_ATTRIBUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "checkpoint_file.h"
#include "grid.h"
#include "lr_schedule.h"
#include "model_shape.h"
#include "optimizer.h"
#include "tokenizer.h"

/* What a checkpoint records of the run besides its tensors: the caller's
 * (the training run's) description, not its configuration. */
typedef struct ckpt_run_info {
  model_shape shape;
  adamw_settings adam;
  lr_schedule schedule;
  int64_t seed;
  int batch_size;       /* sequences per optimizer step */
  int zero;             /* the saving run's ZeRO stage */
  const char *version;  /* tessera's */
  const tokenizer *tokenizer; /* the data's, carried as /tokenizer.json; NULL or bytes: none */
} ckpt_run_info;

/* Every root attribute but `complete`, which a writer adds last. */
void ckpt_write_run_attributes(ckpt_file *f, const ckpt_run_info *info, const grid *g, int64_t step,
                               int64_t optimizer_step);

/* A weights-only file (tessera convert): the format, the model shape,
 * step 0 and `weights_only` = 1; no optimizer or schedule state. */
void ckpt_write_weights_only_attributes(ckpt_file *f, const model_shape *shape, const char *version);
/* Whether the file is weights-only (no Adam moments: start from it with
 * --init-from; it cannot be resumed). */
bool ckpt_is_weights_only(ckpt_file *f);

void ckpt_write_model_shape(ckpt_file *f, const model_shape *s);
/* 0, or -1 with err when the sizes are missing or invalid. */
int ckpt_read_model_shape(ckpt_file *f, model_shape *s, char *err, size_t err_bytes);

#endif
