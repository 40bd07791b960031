/* config_shape — the model the configuration describes (config.h). The
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
  cfg->n_layer = adopted.n_layer, cfg->n_head = adopted.n_head, cfg->d_model = adopted.d_model;
  cfg->vocab_size = adopted.vocab_size, cfg->seq_len = adopted.seq_len;
  cfg->ffn_hidden = model_ffn_hidden(&adopted);
  cfg->norm = (int)adopted.norm, cfg->mlp = (int)adopted.mlp, cfg->position = (int)adopted.position;
  cfg->bias = !adopted.no_bias;
  const bool all_linear = model_has_linear(&adopted) && !model_has_softmax(&adopted);
  cfg->attention = !model_has_linear(&adopted) ? ATTENTION_SOFTMAX : all_linear ? ATTENTION_LINEAR : ATTENTION_HYBRID;
  snprintf(cfg->layer_pattern, sizeof cfg->layer_pattern, "%s", cfg->attention == ATTENTION_HYBRID ? adopted.layer_pattern : "");
  cfg->linear_decay = adopted.decay_base > 0 ? DECAY_CHOICE_SLOPES : DECAY_CHOICE_NONE;
  if (adopted.decay_base > 0) cfg->decay_base = adopted.decay_base;
  cfg->rope_theta = model_rope_theta(&adopted);
  cfg->tie_embeddings = !adopted.untied_head;
  cfg->norm_eps = model_norm_eps(&adopted);
}
