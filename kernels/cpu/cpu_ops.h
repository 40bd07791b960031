/* cpu_ops — the CPU backend's op functions (fp32, OpenBLAS, OpenMP).
 * Internal to kernels/cpu: the rest of tessera reaches them through the
 * backend table (backend_cpu()). Semantics of every op: kernels/backend.h. */
#ifndef TESSERA_CPU_OPS_H
#define TESSERA_CPU_OPS_H

#include "backend.h"

#define F(p) ((float *)(p))
#define CF(p) ((const float *)(p))
#define IDS(p) ((const int32_t *)(p))

/* Deterministic reductions over OpenMP threads (thread_partials.c): a
 * zeroed [threads, n] double table, each thread's row, and the rows added
 * into dst in thread order (the table is freed). */
double *thread_partials_create(size_t n, int *n_rows);
double *thread_partials_row(double *table, size_t n);
void thread_partials_finish(float *dst, double *table, int n_rows, size_t n);

/* cblas_sgemm's row-major product without a BLAS (gemm_builtin.c) */
void cpu_builtin_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc);
void cpu_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const act_t *A, int lda,
              const act_t *B, int ldb, float beta, act_t *C, int ldc);
void cpu_gemm_bias(act_t *out, const act_t *inp, const act_t *weight, const act_t *bias, int N, int IC, int OC);
void cpu_gemm_bias_gelu(act_t *out, act_t *pre, const act_t *inp, const act_t *weight, const act_t *bias, int N,
                        int IC, int OC);
void cpu_bias_add(act_t *out, const act_t *bias, int N, int C);
void cpu_bias_backward(act_t *dbias, const act_t *dout, int N, int C);

void cpu_add(act_t *out, const act_t *a, const act_t *b, size_t n);
void cpu_accumulate(act_t *dst, const act_t *src, size_t n);
void cpu_scale(act_t *x, float factor, size_t n);
void cpu_copy_rows(act_t *dst, int ld_dst, const act_t *src, int ld_src, int rows, int cols);
void cpu_gelu_forward(act_t *out, const act_t *inp, size_t n);
void cpu_gelu_backward(act_t *dinp, const act_t *inp, const act_t *dout, size_t n);
void cpu_swiglu_forward(act_t *out, const act_t *inp, int N, int H);
void cpu_swiglu_backward(act_t *dinp, const act_t *inp, const act_t *dout, int N, int H);
double cpu_sum_squares(const act_t *x, size_t n);

void cpu_embedding_forward(act_t *out, const ids_t *tokens, const ids_t *positions,
                           const act_t *wte, const act_t *wpe, int N, int C, int vocab_start,
                           int n_vocab);
void cpu_embedding_backward(act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens,
                            const ids_t *positions, int N, int C, int vocab_start, int n_vocab);

void cpu_layernorm_forward(act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp,
                           const act_t *weight, const act_t *bias, int N, int C);
void cpu_layernorm_backward(act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                            const act_t *inp, const act_t *weight, const f32_t *mean,
                            const f32_t *rstd, int N, int C);
void cpu_rmsnorm_forward(act_t *out, f32_t *rstd, const act_t *inp, const act_t *weight, int N,
                         int C);
void cpu_rmsnorm_backward(act_t *dinp, act_t *dweight, const act_t *dout, const act_t *inp,
                          const act_t *weight, const f32_t *rstd, int N, int C);

size_t cpu_attention_saved_elems(int B, int T, int NH);
void cpu_attention_forward(act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int C, int NH);
void cpu_attention_backward(act_t *dqkv, const act_t *dout, const act_t *out, const act_t *qkv,
                            const f32_t *saved, int B, int T, int C, int NH);

void cpu_rope_forward(act_t *qkv, const ids_t *positions, int N, int C, int NH, float theta);
void cpu_rope_backward(act_t *dqkv, const ids_t *positions, int N, int C, int NH, float theta);

void cpu_attention_block_forward(f32_t *out, f32_t *lse, const act_t *q, const act_t *k,
                                 const act_t *v, int ld_q, int ld_kv, int B, int Tq, int Tk, int C,
                                 int NH, int q_pos0, int k_pos0);
void cpu_attention_merge(f32_t *out, f32_t *lse, const f32_t *out_b, const f32_t *lse_b, int B,
                         int Tq, int C, int NH);
void cpu_attention_delta(f32_t *delta, const act_t *dout, const act_t *out, int B, int T, int C,
                         int NH);
void cpu_attention_block_backward(act_t *dq, act_t *dk, act_t *dv, int ld_dq, int ld_dkv,
                                  const act_t *dout, const f32_t *delta, const f32_t *lse,
                                  const act_t *q, const act_t *k, const act_t *v, int ld_q,
                                  int ld_kv, int B, int Tq, int Tk, int C, int NH, int q_pos0,
                                  int k_pos0);

void cpu_linear_attention_forward(act_t *out, f32_t *state, const act_t *qkv, const f32_t *decay,
                                  int B, int T, int C, int NH, int chunk);
void cpu_linear_attention_state_forward(act_t *out, const act_t *qkv, const f32_t *state_in,
                                        const f32_t *decay, int B, int T, int C, int NH);
void cpu_linear_attention_backward(act_t *dqkv, const act_t *dout, const act_t *qkv,
                                   const f32_t *dstate, const f32_t *decay, int B, int T, int C,
                                   int NH, int chunk);
void cpu_linear_attention_state_backward(act_t *dqkv, f32_t *dstate_in, const act_t *dout,
                                         const act_t *qkv, const f32_t *state_in,
                                         const f32_t *decay, int B, int T, int C, int NH);
void cpu_linear_attention_state_combine(f32_t *state, const f32_t *piece_state,
                                        const f32_t *decay, int n_tokens, int B, int NH, int HS);

void cpu_crossentropy_max(f32_t *row_max, const act_t *logits, int N, int V, int V_stride);
void cpu_crossentropy_sumexp(f32_t *stats, const act_t *logits, const f32_t *row_max,
                             const ids_t *targets, int N, int V, int V_stride, int vocab_start);
void cpu_crossentropy_finish(f32_t *losses, act_t *logits, const f32_t *row_max, const f32_t *stats,
                             const ids_t *targets, int N, int V, int V_stride, int vocab_start,
                             float dlogits_scale);

void cpu_adamw(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, float grad_scale,
               int64_t step_t);

/* The CPU backend's segment_table: a host copy of the list (segments_create). */
typedef struct cpu_segment_table {
  int n_segments, n_groups; /* n_groups: 1 + the largest group */
  tensor_segment segments[];
} cpu_segment_table;
segment_table *cpu_segments_create(const tensor_segment *segments, int n_segments);
void cpu_segments_free(segment_table *table);
void cpu_adamw_multi(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, const segment_table *segments,
                     float lr, float beta1, float beta2, float eps, float grad_scale, int64_t step_t);
void cpu_sum_squares_multi(const act_t *x, const segment_table *segments, double *sums_by_group, int n_groups);

#endif
