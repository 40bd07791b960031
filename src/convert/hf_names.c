/* hf_names — see hf_names.h. */
#include "hf_names.h"

#include <stdio.h>
#include <string.h>

const char *hf_arch_name(hf_arch arch) { return arch == HF_GPT2 ? "GPT2LMHeadModel" : "LlamaForCausalLM"; }

typedef struct piece_list {
  hf_piece *out;
  int n;
  int64_t offset;
} piece_list;

/* Appends a piece after the previous ones (rows × cols elements). */
static void add(piece_list *l, const char *name, int64_t rows, int64_t cols, bool vector, bool transposed) {
  hf_piece *p = &l->out[l->n++];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->rows = rows, p->cols = cols, p->vector = vector, p->transposed = transposed, p->offset = l->offset;
  l->offset += rows * cols;
}

#define NAME(...) (snprintf(hf, sizeof hf, __VA_ARGS__), hf)

static void gpt2_block(piece_list *l, const char *prefix, int layer, const char *suffix, const model_shape *s) {
  const int64_t C = s->d_model, F = model_ffn_hidden(s);
  char hf[ST_NAME_BYTES];
  static const struct { const char *tessera, *hf; } norms[] = {
      {"ln1.weight", "ln_1.weight"}, {"ln1.bias", "ln_1.bias"}, {"ln2.weight", "ln_2.weight"}, {"ln2.bias", "ln_2.bias"}};
  for (int i = 0; i < 4; i++)
    if (strcmp(suffix, norms[i].tessera) == 0) add(l, NAME("%sh.%d.%s", prefix, layer, norms[i].hf), C, 1, true, false);
  if (strcmp(suffix, "attn.wqkv") == 0) add(l, NAME("%sh.%d.attn.c_attn.weight", prefix, layer), 3 * C, C, false, true);
  if (strcmp(suffix, "attn.bqkv") == 0) add(l, NAME("%sh.%d.attn.c_attn.bias", prefix, layer), 3 * C, 1, true, false);
  if (strcmp(suffix, "attn.wo") == 0) add(l, NAME("%sh.%d.attn.c_proj.weight", prefix, layer), C, C, false, true);
  if (strcmp(suffix, "attn.bo") == 0) add(l, NAME("%sh.%d.attn.c_proj.bias", prefix, layer), C, 1, true, false);
  if (strcmp(suffix, "mlp.w1") == 0) add(l, NAME("%sh.%d.mlp.c_fc.weight", prefix, layer), F, C, false, true);
  if (strcmp(suffix, "mlp.b1") == 0) add(l, NAME("%sh.%d.mlp.c_fc.bias", prefix, layer), F, 1, true, false);
  if (strcmp(suffix, "mlp.w2") == 0) add(l, NAME("%sh.%d.mlp.c_proj.weight", prefix, layer), C, F, false, true);
  if (strcmp(suffix, "mlp.b2") == 0) add(l, NAME("%sh.%d.mlp.c_proj.bias", prefix, layer), C, 1, true, false);
}

static void llama_block(piece_list *l, int layer, const char *suffix, const model_shape *s) {
  const int64_t C = s->d_model, F = model_ffn_hidden(s);
  char hf[ST_NAME_BYTES];
  const char *qkv[3] = {"q_proj", "k_proj", "v_proj"}, *gate_up[2] = {"gate_proj", "up_proj"};
  if (strcmp(suffix, "ln1.weight") == 0) add(l, NAME("model.layers.%d.input_layernorm.weight", layer), C, 1, true, false);
  if (strcmp(suffix, "ln2.weight") == 0)
    add(l, NAME("model.layers.%d.post_attention_layernorm.weight", layer), C, 1, true, false);
  for (int i = 0; i < 3; i++) {
    if (strcmp(suffix, "attn.wqkv") == 0) add(l, NAME("model.layers.%d.self_attn.%s.weight", layer, qkv[i]), C, C, false, false);
    if (strcmp(suffix, "attn.bqkv") == 0) add(l, NAME("model.layers.%d.self_attn.%s.bias", layer, qkv[i]), C, 1, true, false);
  }
  if (strcmp(suffix, "attn.wo") == 0) add(l, NAME("model.layers.%d.self_attn.o_proj.weight", layer), C, C, false, false);
  if (strcmp(suffix, "attn.bo") == 0) add(l, NAME("model.layers.%d.self_attn.o_proj.bias", layer), C, 1, true, false);
  for (int i = 0; i < 2; i++) {
    if (strcmp(suffix, "mlp.w1") == 0) add(l, NAME("model.layers.%d.mlp.%s.weight", layer, gate_up[i]), F, C, false, false);
    if (strcmp(suffix, "mlp.b1") == 0) add(l, NAME("model.layers.%d.mlp.%s.bias", layer, gate_up[i]), F, 1, true, false);
  }
  if (strcmp(suffix, "mlp.w2") == 0) add(l, NAME("model.layers.%d.mlp.down_proj.weight", layer), C, F, false, false);
  if (strcmp(suffix, "mlp.b2") == 0) add(l, NAME("model.layers.%d.mlp.down_proj.bias", layer), C, 1, true, false);
}

int hf_pieces(hf_arch arch, const char *prefix, const model_shape *s, const char *name, hf_piece out[HF_MAX_PIECES]) {
  piece_list l = {out, 0, 0};
  const int64_t C = s->d_model;
  const bool gpt2 = arch == HF_GPT2;
  char hf[ST_NAME_BYTES];
  int layer = -1, used = 0;
  if (sscanf(name, "layers.%d.%n", &layer, &used) == 1 && used > 0) {
    if (gpt2) gpt2_block(&l, prefix, layer, name + used, s);
    else llama_block(&l, layer, name + used, s);
  } else if (strcmp(name, "wte") == 0) {
    add(&l, gpt2 ? NAME("%swte.weight", prefix) : "model.embed_tokens.weight", s->vocab_size, C, false, false);
  } else if (strcmp(name, "wpe") == 0 && gpt2) {
    add(&l, NAME("%swpe.weight", prefix), s->seq_len, C, false, false);
  } else if (strcmp(name, "lnf.weight") == 0) {
    add(&l, gpt2 ? NAME("%sln_f.weight", prefix) : "model.norm.weight", C, 1, true, false);
  } else if (strcmp(name, "lnf.bias") == 0 && gpt2) {
    add(&l, NAME("%sln_f.bias", prefix), C, 1, true, false);
  } else if (strcmp(name, "lm_head") == 0) {
    add(&l, "lm_head.weight", s->vocab_size, C, false, false);
  }
  return l.n;
}

int hf_piece_shape(const hf_piece *p, int64_t shape[2]) {
  if (p->vector) {
    shape[0] = p->rows * p->cols;
    return 1;
  }
  shape[0] = p->transposed ? p->cols : p->rows;
  shape[1] = p->transposed ? p->rows : p->cols;
  return 2;
}
