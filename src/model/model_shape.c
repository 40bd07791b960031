/* model_shape — see model_shape.h. */
#include "model_shape.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- shape */

model_shape model_shape_gpt2(int n_layer, int n_head, int d_model, int vocab_size, int seq_len) {
  model_shape s;
  memset(&s, 0, sizeof s);
  s.n_layer = n_layer, s.n_head = n_head, s.d_model = d_model, s.vocab_size = vocab_size, s.seq_len = seq_len;
  return s;
}

bool model_layer_is_linear(const model_shape *s, int l) {
  const size_t n = strlen(s->layer_pattern);
  return n > 0 && s->layer_pattern[(size_t)l % n] == 'L';
}

bool model_has_linear(const model_shape *s) {
  for (int l = 0; l < s->n_layer; l++)
    if (model_layer_is_linear(s, l)) return true;
  return false;
}

bool model_has_softmax(const model_shape *s) {
  for (int l = 0; l < s->n_layer; l++)
    if (!model_layer_is_linear(s, l)) return true;
  return false;
}

int model_ffn_hidden(const model_shape *s) {
  if (s->ffn_hidden > 0) return s->ffn_hidden;
  if (s->mlp == MLP_GELU) return 4 * s->d_model;
  /* SwiGLU's three matrices at about the FLOPs of GELU's two: 2/3 · 4h,
   * rounded up to a multiple of 16 (Llama rounds to 256 at its sizes) */
  return (8 * s->d_model / 3 + 15) / 16 * 16;
}

int model_head_size(const model_shape *s) { return s->d_model / s->n_head; }
double model_rope_theta(const model_shape *s) { return s->rope_theta > 0 ? s->rope_theta : 10000.0; }
int model_linear_chunk(const model_shape *s) { return s->linear_chunk > 0 ? s->linear_chunk : 64; }
double model_norm_eps(const model_shape *s) { return s->norm_eps > 0 ? s->norm_eps : 1e-5; }
bool model_norm_has_bias(const model_shape *s) { return s->norm == NORM_LAYERNORM; }

/* ---------------------------------------------------------------- names */

static const char *const norm_names[] = {"layernorm", "rmsnorm"};
static const char *const mlp_names[] = {"gelu", "swiglu"};
static const char *const position_names[] = {"learned", "rope", "none"};
static const char *const position_words[] = {"learned positions", "rotary positions", "no positions"};
#define N_NAMES(table) ((int)(sizeof table / sizeof table[0]))

const char *model_norm_name(norm_kind kind) { return norm_names[kind]; }
const char *model_mlp_name(mlp_kind kind) { return mlp_names[kind]; }
const char *model_position_name(position_kind kind) { return position_names[kind]; }

static int index_of(const char *const *names, int n, const char *value) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], value) == 0) return i;
  return -1;
}
int model_norm_from_name(const char *name) { return index_of(norm_names, N_NAMES(norm_names), name); }
int model_mlp_from_name(const char *name) { return index_of(mlp_names, N_NAMES(mlp_names), name); }
int model_position_from_name(const char *name) { return index_of(position_names, N_NAMES(position_names), name); }

void model_expanded_pattern(const model_shape *s, char *out, size_t out_bytes) {
  size_t n = 0;
  for (int l = 0; l < s->n_layer && n + 1 < out_bytes; l++) out[n++] = model_layer_is_linear(s, l) ? 'L' : 'S';
  out[n] = '\0';
}

/* Room for one letter per layer: the configuration allows 1024 layers, a
 * checkpoint's pattern attribute is read into the same size. */
#define PATTERN_TEXT_BYTES 4096

void model_shape_describe(const model_shape *s, char *out, size_t out_bytes) {
  char pattern[PATTERN_TEXT_BYTES];
  model_expanded_pattern(s, pattern, sizeof pattern);
  const char *attention = strchr(pattern, 'L') ? (strchr(pattern, 'S') ? "hybrid" : "linear") : "softmax";
  snprintf(out, out_bytes, "%s (eps %g), %s MLP (width %d), %s, %s, %s head, %s attention%s%s",
           norm_names[s->norm], model_norm_eps(s), s->mlp == MLP_SWIGLU ? "SwiGLU" : "GELU", model_ffn_hidden(s),
           position_words[s->position], s->no_bias ? "no biases" : "biases", s->untied_head ? "untied" : "tied",
           attention, strchr(pattern, 'L') ? " " : "", strchr(pattern, 'L') ? pattern : "");
}

#define APPEND(...)                                                                   \
  do {                                                                                \
    size_t used_ = strlen(out);                                                       \
    snprintf(out + used_, out_bytes - used_, "%s", used_ ? "; " : "");                \
    used_ = strlen(out);                                                              \
    snprintf(out + used_, out_bytes - used_, __VA_ARGS__);                            \
  } while (0)

void model_shape_differences(const model_shape *a, const model_shape *b, char *out, size_t out_bytes) {
  out[0] = '\0';
  const struct { const char *name; long long saved, now; } ints[] = {
      {"n_layer", a->n_layer, b->n_layer},       {"n_head", a->n_head, b->n_head},
      {"d_model", a->d_model, b->d_model},       {"vocab_size", a->vocab_size, b->vocab_size},
      {"seq_len", a->seq_len, b->seq_len},       {"ffn_hidden", model_ffn_hidden(a), model_ffn_hidden(b)},
      {"bias", !a->no_bias, !b->no_bias},        {"tie_embeddings", !a->untied_head, !b->untied_head}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    if (ints[i].saved != ints[i].now)
      APPEND("%s %lld in the checkpoint, %lld now", ints[i].name, ints[i].saved, ints[i].now);
  if (a->norm != b->norm) APPEND("norm %s in the checkpoint, %s now", norm_names[a->norm], norm_names[b->norm]);
  /* ε enters every norm: even 1e-5 against 1e-6 changes each output (a
   * relative 1e-12 is the attribute's own round trip, not a difference) */
  if (fabs(model_norm_eps(a) - model_norm_eps(b)) > 1e-12 * model_norm_eps(b))
    APPEND("norm_eps %g in the checkpoint, %g now", model_norm_eps(a), model_norm_eps(b));
  if (a->mlp != b->mlp) APPEND("mlp %s in the checkpoint, %s now", mlp_names[a->mlp], mlp_names[b->mlp]);
  if (a->position != b->position)
    APPEND("position %s in the checkpoint, %s now", position_names[a->position], position_names[b->position]);
  char pa[PATTERN_TEXT_BYTES], pb[PATTERN_TEXT_BYTES];
  model_expanded_pattern(a, pa, sizeof pa);
  model_expanded_pattern(b, pb, sizeof pb);
  if (strcmp(pa, pb) != 0) APPEND("attention per layer %s in the checkpoint, %s now", pa, pb);
  if ((model_has_linear(a) || model_has_linear(b)) && fabs(a->decay_base - b->decay_base) > 1e-12)
    APPEND("decay_base %g in the checkpoint, %g now (0: no decay)", a->decay_base, b->decay_base);
  if ((a->position == POSITION_ROPE || b->position == POSITION_ROPE) &&
      fabs(model_rope_theta(a) - model_rope_theta(b)) > 1e-9 * model_rope_theta(b))
    APPEND("rope_theta %g in the checkpoint, %g now", model_rope_theta(a), model_rope_theta(b));
}

/* ---------------------------------------------------------------- FLOPs */

double model_block_flops(const model_shape *s, int l, int T) {
  const double C = s->d_model, F = model_ffn_hidden(s), HS = (double)s->d_model / s->n_head;
  /* the matrices a token multiplies through: QKV 3C², output C², the MLP
   * 2FC (GELU) or 3FC (SwiGLU), at 2 FLOPs per multiply-add; biases and
   * norms are noise */
  const double matrices = 2.0 * (4.0 * C * C + (s->mlp == MLP_SWIGLU ? 3.0 : 2.0) * F * C);
  if (!model_layer_is_linear(s, l)) return matrices + 2.0 * T * C; /* causal QKᵀ and PV: half of 4TC */
  /* chunkwise linear attention: the masked chunk (half of 4·chunk·C) and
   * the state's two products q·S and kᵀv (2·2·HS·C) */
  const double chunk = model_linear_chunk(s);
  return matrices + 2.0 * (chunk < T ? chunk : T) * C + 4.0 * HS * C;
}

double model_flops_per_token(const model_shape *s, int T) {
  /* forward and backward: three times the forward (PaLM's appendix: 6N
   * for the matrices, attention likewise), plus the head's 2VC (tied or
   * not: the embedding's lookup is no product) */
  double forward = 2.0 * s->vocab_size * s->d_model;
  for (int l = 0; l < s->n_layer; l++) forward += model_block_flops(s, l, T);
  return 3.0 * forward;
}

double model_head_flops(const model_shape *s) {
  const double C = s->d_model, V = s->vocab_size;
  /* the head's product, and the softmax and loss over every logit (about
   * five operations each: max, exp, sum, the gradient) */
  return 2.0 * V * C + 5.0 * V;
}
