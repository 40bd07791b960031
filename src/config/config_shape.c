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
