/* hf_config — a Hugging Face model's config.json, read into a model shape
 * and written from one (jansson). What tessera's model cannot compute is
 * one clear error naming the key: grouped-query attention, RoPE scaling,
 * another activation or head size, attention without the 1/sqrt(d) scale.
 * The norm epsilon and an untied head (tie_word_embeddings false, the
 * tensor lm_head.weight) are part of tessera's model shape. */
#ifndef TESSERA_HF_CONFIG_H
#define TESSERA_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "hf_names.h"
#include "model_shape.h"

typedef struct hf_model_info {
  hf_arch arch;
  model_shape shape;
} hf_model_info;

/* DIR/config.json into info: 0, or EXIT_USER_ERROR / EXIT_IO_ERROR with err. */
int hf_config_read(const char *dir, hf_model_info *info, char *err, size_t err_bytes);
/* The architecture that holds the model: 0, or EXIT_USER_ERROR with err. */
int hf_arch_of_shape(const model_shape *shape, hf_arch *arch, char *err, size_t err_bytes);
/* Writes path (config.json of the model). 0 or EXIT_IO_ERROR. */
int hf_config_write(const char *path, hf_arch arch, const model_shape *shape, char *err, size_t err_bytes);

#endif
