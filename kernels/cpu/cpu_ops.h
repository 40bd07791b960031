/* cpu_ops — the CPU backend's op functions (fp32, OpenBLAS, OpenMP).
 * Internal to kernels/cpu: the rest of tessera reaches them through the
 * backend table (backend_cpu()). Semantics of every op: kernels/backend_ops.h. */
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

/* The CPU backend's segment_table: a host copy of the list (segments_create). */
typedef struct cpu_segment_table {
  int n_segments, n_groups; /* n_groups: 1 + the largest group */
  tensor_segment segments[];
} cpu_segment_table;

/* The table's compute ops (kernels/backend_ops.h: what each computes):
 * cpu_gemm, cpu_gemm_bias, …, cpu_sum_squares_multi. */
#define CPU_OP_PROTOTYPE(ret, op, params) ret cpu_##op params;
BACKEND_COMPUTE_OPS(CPU_OP_PROTOTYPE)

#endif
