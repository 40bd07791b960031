/* config_shape — the model the configuration describes (config.h). The
 * choice enums of config.h are in the order of model_shape.h's kinds. */
#include <stdio.h>

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
