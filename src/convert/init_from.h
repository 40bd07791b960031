/* init_from — `tessera train --init-from PATH`: a run starts from the
 * weights of a model in any format model_io reads (a tessera checkpoint,
 * full or weights-only, an llm.c .bin, a Hugging Face folder) at step 0,
 * with a fresh optimizer (Adam moments zero, step count 0) and the data
 * order from its start. `--resume` continues a run; this starts one.
 *
 * Any layout: the loader is weights_load's (src/checkpoint/weights_load.h),
 * the one `tessera eval` loads checkpoints with. The dp×sp replicas of a tp
 * shard each fill a disjoint range of the flat buffer (their ZeRO range,
 * or the split ZeRO would make), reading from the source only the tensors
 * that range touches, one logical tensor at a time, and keeping their
 * shard's elements of it; an all-gather over the replicas completes the
 * weights. The model's weights and the optimizer's master copy (under
 * ZeRO-3 the compute shard too) are then set from them.
 *
 * A source that carries a tokenizer (an HF folder's tokenizer.json, a
 * checkpoint's) must agree with the data's, as on a resume; data of GPT-2
 * tokens whose files nobody named takes a GPT-2-sized one for its samples.
 */
#ifndef TESSERA_INIT_FROM_H
#define TESSERA_INIT_FROM_H

#include "grid.h"
#include "model.h"
#include "optimizer.h"
#include "tokenizer.h"

/* Collective over the world. The run's shape must be the source's
 * (train_command takes it from there); *tok: the data's tokenizer (NULL:
 * GPT-2 tokens, unnamed), which may be set to the source's. A source that
 * cannot be read, or whose tokenizer is not the data's, is one message from
 * rank 0 and exit 1 or 2. */
void model_init_from(const char *path, tokenizer **tok, grid *g, model *m, optimizer *opt);

#endif
