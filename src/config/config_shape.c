/* config_shape — the model the configuration describes, and the [model]
 * keys of a given model (config.h). The
 * choice enums of config.h are in the order of model_shape.h's kinds. */
#include <stdio.h>
#include <string.h>

#include "config.h"

model_shape config_model_shape(const config *cfg) {
  model_shape s = model_shape_gpt2(cfg->n_layer, cfg->n_head, cfg->d_model, cfg->vocab_size, cfg->seq_len);
  s.ffn_hidden = cfg->ffn_hidden;
  s.norm = (norm_kind)cfg->norm;
  s.mlp = (mlp_kind)cfg->mlp;
  s.position = (position_kind)cfg->position;
  s.no_bias = !cfg->bias;
  const char *pattern = cfg->attention == ATTENTION_LINEAR   ? "L"
                        : cfg->attention == ATTENTION_HYBRID ? cfg->layer_pattern
                                                             : "";
  snprintf(s.layer_pattern, sizeof s.layer_pattern, "%.63s", pattern); /* config_validate: at most 63 */
  s.decay_base = cfg->linear_decay == DECAY_CHOICE_SLOPES ? cfg->decay_base : 0;
  s.rope_theta = cfg->rope_theta;
  s.linear_chunk = cfg->linear_chunk;
  s.untied_head = !cfg->tie_embeddings;
  s.norm_eps = cfg->norm_eps;
  return s;
}

/* The source's shape with the model keys the user set put in. */
static model_shape with_keys_set(const config *cfg, const model_shape *source) {
  const model_shape mine = config_model_shape(cfg);
  model_shape s = *source;
#define TAKE(key, field) \
  if (config_key_was_set(cfg, key)) s.field = mine.field
  TAKE("n_layer", n_layer);
  TAKE("n_head", n_head);
  TAKE("d_model", d_model);
  TAKE("vocab_size", vocab_size);
  TAKE("seq_len", seq_len);
  TAKE("ffn_hidden", ffn_hidden);
  TAKE("norm", norm);
  TAKE("mlp", mlp);
  TAKE("position", position);
  TAKE("bias", no_bias);
  TAKE("decay_base", decay_base);
  TAKE("linear_decay", decay_base);
  TAKE("rope_theta", rope_theta);
  TAKE("tie_embeddings", untied_head);
  TAKE("norm_eps", norm_eps);
#undef TAKE
  if (config_key_was_set(cfg, "attention") || config_key_was_set(cfg, "layer_pattern"))
    memcpy(s.layer_pattern, mine.layer_pattern, sizeof s.layer_pattern);
  return s;
}

void config_adopt_model_shape(config *cfg, const model_shape *source, char *differences, size_t differences_bytes) {
  model_shape adopted = *source;
  /* rotary or no positions: no tensor depends on seq_len */
  if (source->position != POSITION_LEARNED && config_key_was_set(cfg, "seq_len")) adopted.seq_len = cfg->seq_len;
  const model_shape wanted = with_keys_set(cfg, &adopted);
  model_shape_differences(&adopted, &wanted, differences, differences_bytes);
  const int linear_chunk = cfg->linear_chunk; /* compute only: the user's stays */
  config_set_model_shape(cfg, &adopted);
  cfg->linear_chunk = linear_chunk;
}

void config_set_model_shape(config *cfg, const model_shape *s) {
  cfg->n_layer = s->n_layer;
  cfg->n_head = s->n_head;
  cfg->d_model = s->d_model;
  cfg->vocab_size = s->vocab_size;
  cfg->seq_len = s->seq_len;
  cfg->ffn_hidden = s->ffn_hidden;
  cfg->norm = (int)s->norm;
  cfg->mlp = (int)s->mlp;
  cfg->position = (int)s->position;
  cfg->bias = !s->no_bias;
  cfg->attention = !s->layer_pattern[0]                   ? ATTENTION_SOFTMAX
                   : strcmp(s->layer_pattern, "L") == 0 ? ATTENTION_LINEAR
                                                          : ATTENTION_HYBRID;
  snprintf(cfg->layer_pattern, sizeof cfg->layer_pattern, "%s",
           cfg->attention == ATTENTION_HYBRID ? s->layer_pattern : "");
  cfg->linear_decay = s->decay_base > 0 ? DECAY_CHOICE_SLOPES : DECAY_CHOICE_NONE;
  if (s->decay_base > 0) cfg->decay_base = s->decay_base;
  cfg->rope_theta = model_rope_theta(s);
  cfg->linear_chunk = model_linear_chunk(s);
  cfg->tie_embeddings = !s->untied_head;
  cfg->norm_eps = model_norm_eps(s);
}
