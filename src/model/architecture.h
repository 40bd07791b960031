/* architecture — the model's shape and options (model_shape) between the
 * places that hold them: the configuration, a checkpoint's attributes
 * (doc/checkpoint-format.md), and the check that a resumed run trains the
 * same model. A checkpoint written before an option existed lacks its
 * attribute and reads as GPT-2's choice (layernorm, GELU, learned positions,
 * biases, softmax attention).
 */
#ifndef TESSERA_ARCHITECTURE_H
#define TESSERA_ARCHITECTURE_H

#include <stddef.h>

#include "checkpoint_file.h"
#include "config.h"
#include "model.h"

model_shape architecture_from_config(const config *cfg);

/* The attributes of the root group. */
void architecture_write(ckpt_file *f, const model_shape *s);
/* 0, or -1 with err when the sizes are missing or invalid. */
int architecture_read(ckpt_file *f, model_shape *s, char *err, size_t err_bytes);

/* The differences that change the model's function, as "name A in the
 * checkpoint, B now; ..." (empty when none). The chunk size of linear
 * attention changes only the order of additions: not a difference. */
void architecture_differences(const model_shape *saved, const model_shape *now, char *out, size_t out_bytes);

/* One line: "GPT-2 style: layernorm, GELU, learned positions, softmax
 * attention" and the like. */
void architecture_describe(const model_shape *s, char *out, size_t out_bytes);

#endif
