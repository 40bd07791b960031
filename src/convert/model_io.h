/* model_io — models in and out of tessera: a model source (a file or folder
 * one reads tensors from) and a model sink (one writes tensors into), in
 * three formats:
 *   - tessera: a checkpoint file (.h5); a sink writes a weights-only one
 *     (doc/checkpoint-format.md) that `tessera sample`, `ckpt info|verify`
 *     and `train --init-from` read;
 *   - hf: a Hugging Face model folder (config.json, model.safetensors or
 *     sharded with model.safetensors.index.json, tokenizer.json) of
 *     GPT2LMHeadModel or LlamaForCausalLM (hf_names.c maps the tensors);
 *   - llmc: llm.c's GPT-2 model file (.bin, io/llmc_model.h).
 * Both sides speak tessera's logical tensors (param_layout.h) by name, one
 * whole fp32 tensor at a time, so a conversion holds one tensor (and one
 * transposed copy) in memory, never the model.
 *
 * A sink refuses a model its format cannot hold (an untied head into
 * llm.c, RMSNorm or linear attention into GPT-2, ...) before it creates
 * anything, writes under a temporary name, and puts the result in place
 * only at commit: an abort, or any failure, leaves no output behind.
 * Errors are returned as (exit status, one line in err), never raised, so
 * every MPI rank can open the same source and report once.
 */
#ifndef TESSERA_MODEL_IO_H
#define TESSERA_MODEL_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "model_shape.h"

typedef enum model_format { MODEL_FORMAT_HF, MODEL_FORMAT_LLMC, MODEL_FORMAT_TESSERA } model_format;

/* "hf", "llmc", "tessera". */
const char *model_format_name(model_format format);
/* The format a name stands for ("hf", "llmc", "tessera"), or −1. */
int model_format_from_name(const char *name);
/* The format of a path: an existing directory is hf, *.bin llmc, *.h5
 * tessera; a path that does not exist and has neither suffix is an hf
 * folder to be. 0, or EXIT_USER_ERROR with err when none applies. */
int model_format_of_path(const char *path, model_format *format, char *err, size_t err_bytes);

typedef struct model_source model_source;

/* Opens a model in the format of its path. NULL with *status
 * (EXIT_USER_ERROR: missing, unknown or unsupported; EXIT_IO_ERROR:
 * damaged) and err. A tessera checkpoint path may be a save directory
 * holding `latest`. */
model_source *model_source_open(const char *path, int *status, char *err, size_t err_bytes);
void model_source_close(model_source *s);
const model_shape *model_source_shape(const model_source *s);
/* What the source is, for messages: "Hugging Face GPT2LMHeadModel", ... */
const char *model_source_description(const model_source *s);
/* The tokenizer.json text the source carries, or NULL. */
const char *model_source_tokenizer_json(const model_source *s);
/* Tensor `name` (a tessera parameter name) as its logical fp32 tensor
 * (param_layout.h shapes). 0 or the exit status with err. */
int model_source_read(model_source *s, const char *name, float *out, char *err, size_t err_bytes);

typedef struct model_sink model_sink;

/* Checks that `format` can hold the model, then creates the output under a
 * temporary name. NULL with *status and err (nothing created). An hf
 * output folder must not exist yet; a file output is replaced at commit. */
model_sink *model_sink_create(const char *path, model_format format, const model_shape *shape,
                              const char *tokenizer_json, int *status, char *err, size_t err_bytes);
/* Writes one logical tensor (every tensor of the shape once, any order). */
int model_sink_write(model_sink *s, const char *name, const float *data, char *err, size_t err_bytes);
/* Finishes the output and renames it into place; the sink is freed. */
int model_sink_commit(model_sink *s, char *err, size_t err_bytes);
/* Removes everything written; the sink is freed. */
void model_sink_abort(model_sink *s);

/* Copies every tensor from source to sink, one at a time, then commits (or
 * aborts on failure). 0 or the exit status with err. */
int model_convert(model_source *source, model_sink *sink, char *err, size_t err_bytes);

#endif
