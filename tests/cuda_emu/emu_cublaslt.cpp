/* emu_cublaslt — cuBLASLt on the host for the emulator (include/cublasLt.h):
 * descriptors are plain structs, the heuristic "finds" one algorithm for
 * any configuration tessera may legally ask for, and cublasLtMatmul is a
 * plain loop: column-major D = epilogue(alpha·op(A)·op(B) + beta·C) on
 * bf16 with fp32 accumulation, then bias[i] added to row i (a vector of
 * length m broadcast over the columns) and, for GELU_AUX_BIAS, the biased
 * value stored to aux (ld aux_ld) and GELU's tanh form of it to D — each
 * output rounded to bf16 once.
 *
 * What it checks, as the library documents: attribute sizes, bf16 layouts
 * with fp32 compute and scale, shapes that agree, ld ≥ rows, a bias pointer
 * for BIAS epilogues, the aux pointer and an aux ld divisible by 8 for
 * GELU_AUX_BIAS. The returned algorithm records the shape, the epilogue,
 * the workspace it needs and the pointer alignments it was chosen for
 * (the preferences' minima, the bias and aux pointers' own); a matmul with
 * another shape, less aligned pointers or a smaller workspace is refused,
 * so a heuristic cache that reuses an algorithm where it does not hold
 * fails here. Each refusal names its reason on stderr. */
#include <cublasLt.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

struct cublasLtContext {
  int unused;
};
struct cublasLtMatmulDescOpaque_t {
  int compute_type, scale_type;
  int32_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void *bias = nullptr;
  int32_t bias_type = -1; /* -1: D's type */
  void *aux = nullptr;
  int64_t aux_ld = 0;
  int32_t aux_type = -1;
};
struct cublasLtMatrixLayoutOpaque_t {
  int type;
  uint64_t rows, cols;
  int64_t ld;
};
struct cublasLtMatmulPreferenceOpaque_t {
  uint64_t max_workspace_bytes = 0;
  uint32_t min_align[4] = {256, 256, 256, 256}; /* A, B, C, D */
};
/* what an emulated algorithm holds in cublasLtMatmulAlgo_t's 64 bytes */
struct emu_algo {
  uint64_t m, n, k;
  uint32_t epilogue, trans_a, trans_b;
  uint32_t align[6]; /* A, B, C, D, bias, aux */
  uint32_t workspace_bytes;
};
static_assert(sizeof(emu_algo) <= sizeof(cublasLtMatmulAlgo_t), "the emulated algorithm fits the opaque one");

static const size_t emu_workspace_bytes = 1 << 20; /* what every emulated algorithm asks for */

static cublasStatus_t refuse(cublasStatus_t status, const char *why) {
  fprintf(stderr, "cuBLASLt emulation: %s\n", why);
  return status;
}

static uint32_t alignment_of(const void *p) {
  const uintptr_t address = (uintptr_t)p;
  uint32_t align = 256;
  while (align > 1 && address % align) align >>= 1;
  return align;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
  *handle = new cublasLtContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, int compute_type, int scale_type) {
  if (compute_type != CUBLAS_COMPUTE_32F || scale_type != CUDA_R_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "only CUBLAS_COMPUTE_32F with fp32 scale is emulated");
  *desc = new cublasLtMatmulDescOpaque_t();
  (*desc)->compute_type = compute_type, (*desc)->scale_type = scale_type;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

/* copies an attribute of the documented size, or refuses */
template <typename T> static cublasStatus_t take(T *dst, const void *value, size_t n_bytes, const char *name) {
  if (n_bytes != sizeof(T)) {
    char why[160];
    snprintf(why, sizeof why, "%s takes %zu bytes, given %zu", name, sizeof(T), n_bytes);
    return refuse(CUBLAS_STATUS_INVALID_VALUE, why);
  }
  memcpy(dst, value, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute,
                                              const void *value, size_t n_bytes) {
  switch (attribute) {
  case CUBLASLT_MATMUL_DESC_TRANSA: return take(&desc->trans_a, value, n_bytes, "TRANSA (int32_t)");
  case CUBLASLT_MATMUL_DESC_TRANSB: return take(&desc->trans_b, value, n_bytes, "TRANSB (int32_t)");
  case CUBLASLT_MATMUL_DESC_EPILOGUE: return take(&desc->epilogue, value, n_bytes, "EPILOGUE (uint32_t)");
  case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return take(&desc->bias, value, n_bytes, "BIAS_POINTER (const void *)");
  case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return take(&desc->bias_type, value, n_bytes, "BIAS_DATA_TYPE (int32_t)");
  case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return take(&desc->aux, value, n_bytes, "EPILOGUE_AUX_POINTER");
  case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return take(&desc->aux_ld, value, n_bytes, "EPILOGUE_AUX_LD (int64_t)");
  case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
    return take(&desc->aux_type, value, n_bytes, "EPILOGUE_AUX_DATA_TYPE (int32_t)");
  }
  return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "a matmul attribute the emulator does not model");
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, int type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (type != CUDA_R_16BF) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "only bf16 matrices are emulated");
  if (ld < 1 || (uint64_t)ld < rows) return refuse(CUBLAS_STATUS_INVALID_VALUE, "a layout's ld below its rows");
  *layout = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *preference) {
  *preference = new cublasLtMatmulPreferenceOpaque_t();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t preference,
                                                    cublasLtMatmulPreferenceAttributes_t attribute, const void *value,
                                                    size_t n_bytes) {
  cublasStatus_t status = CUBLAS_STATUS_NOT_SUPPORTED;
  switch (attribute) {
  case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
    return take(&preference->max_workspace_bytes, value, n_bytes, "MAX_WORKSPACE_BYTES (uint64_t)");
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
    uint32_t *slot = &preference->min_align[attribute - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES];
    status = take(slot, value, n_bytes, "MIN_ALIGNMENT_*_BYTES (uint32_t)");
    if (status == CUBLAS_STATUS_SUCCESS && (*slot == 0 || (*slot & (*slot - 1))))
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "an alignment that is not a power of two");
    return status;
  }
  }
  return refuse(status, "a preference the emulator does not model");
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t preference) {
  delete preference;
  return CUBLAS_STATUS_SUCCESS;
}

/* op(A) is m×k, op(B) k×n, C and D m×n: the shapes of the call */
static cublasStatus_t shapes(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                             cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, uint64_t *m, uint64_t *n,
                             uint64_t *k) {
  *m = desc->trans_a ? a->cols : a->rows;
  *k = desc->trans_a ? a->rows : a->cols;
  const uint64_t kb = desc->trans_b ? b->cols : b->rows;
  *n = desc->trans_b ? b->rows : b->cols;
  if (kb != *k) return refuse(CUBLAS_STATUS_INVALID_VALUE, "op(A) and op(B) disagree on k");
  if (c->rows != *m || c->cols != *n || d->rows != *m || d->cols != *n || c->ld != d->ld)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "C or D is not m×n (or C and D differ in ld, as in-place needs)");
  const uint32_t e = desc->epilogue;
  if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_BIAS && e != CUBLASLT_EPILOGUE_GELU_AUX_BIAS)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "an epilogue the emulator does not model");
  if (e != CUBLASLT_EPILOGUE_DEFAULT) {
    if (!desc->bias) return refuse(CUBLAS_STATUS_INVALID_VALUE, "a BIAS epilogue without BIAS_POINTER");
    if (desc->bias_type != -1 && desc->bias_type != CUDA_R_16BF)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "a bias type other than bf16 (D's type)");
  }
  if (e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
    if (!desc->aux) return refuse(CUBLAS_STATUS_INVALID_VALUE, "GELU_AUX_BIAS without EPILOGUE_AUX_POINTER");
    if (desc->aux_ld % 8 != 0 || desc->aux_ld < (int64_t)*m)
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "EPILOGUE_AUX_LD not divisible by 8 or below D's rows");
    if (desc->aux_type != -1 && desc->aux_type != CUDA_R_16BF)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "an aux type other than bf16 (D's type)");
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t preference,
                                              int n_requested, cublasLtMatmulHeuristicResult_t results[],
                                              int *n_returned) {
  if (n_requested <= 0) return refuse(CUBLAS_STATUS_INVALID_VALUE, "requestedAlgoCount ≤ 0");
  *n_returned = 0;
  uint64_t m, n, k;
  cublasStatus_t status = shapes(desc, a, b, c, d, &m, &n, &k);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  if (preference->max_workspace_bytes < emu_workspace_bytes) return CUBLAS_STATUS_NOT_SUPPORTED; /* none fits */
  emu_algo algo = {m, n, k, desc->epilogue, (uint32_t)desc->trans_a, (uint32_t)desc->trans_b, {}, 0};
  for (int i = 0; i < 4; i++) algo.align[i] = preference->min_align[i];
  /* the heuristic reads the bias and aux pointers' alignment from their values */
  algo.align[4] = desc->bias ? alignment_of(desc->bias) : 1;
  algo.align[5] = desc->aux ? alignment_of(desc->aux) : 1;
  algo.workspace_bytes = (uint32_t)emu_workspace_bytes;
  memset(&results[0], 0, sizeof results[0]);
  memcpy(&results[0].algo, &algo, sizeof algo);
  results[0].workspaceSize = emu_workspace_bytes;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *n_returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

static float element(const void *base, uint64_t row, uint64_t col, int64_t ld) {
  return __bfloat162float(((const __nv_bfloat16 *)base)[row + col * (uint64_t)ld]);
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo_in, void *workspace, size_t workspace_bytes,
                              cudaStream_t) {
  uint64_t m, n, k;
  cublasStatus_t status = shapes(desc, a, b, c, d, &m, &n, &k);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  if (!algo_in) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "no algorithm (the emulator has no default search)");
  emu_algo algo;
  memcpy(&algo, algo_in, sizeof algo);
  if (algo.m != m || algo.n != n || algo.k != k || algo.epilogue != desc->epilogue ||
      algo.trans_a != (uint32_t)desc->trans_a || algo.trans_b != (uint32_t)desc->trans_b)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "an algorithm found for another shape, epilogue or transpose");
  const void *pointers[6] = {A, B, C, D, desc->bias, desc->aux};
  for (int i = 0; i < 6; i++)
    if (pointers[i] && alignment_of(pointers[i]) < algo.align[i])
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "a pointer less aligned than the algorithm was chosen for");
  if (!workspace || workspace_bytes < algo.workspace_bytes)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "a workspace smaller than the algorithm needs");
  const float al = *(const float *)alpha, be = *(const float *)beta;
  const bool has_bias = desc->epilogue != CUBLASLT_EPILOGUE_DEFAULT;
  const bool gelu = desc->epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  __nv_bfloat16 *out = (__nv_bfloat16 *)D, *aux = (__nv_bfloat16 *)desc->aux;
  const __nv_bfloat16 *bias = (const __nv_bfloat16 *)desc->bias;
  for (uint64_t j = 0; j < n; j++)
    for (uint64_t i = 0; i < m; i++) {
      float sum = 0;
      for (uint64_t l = 0; l < k; l++)
        sum += (desc->trans_a ? element(A, l, i, a->ld) : element(A, i, l, a->ld)) *
               (desc->trans_b ? element(B, j, l, b->ld) : element(B, l, j, b->ld));
      float x = al * sum + (be != 0 ? be * element(C, i, j, c->ld) : 0.0f);
      if (has_bias) x += __bfloat162float(bias[i]);
      if (gelu) {
        aux[i + j * (uint64_t)desc->aux_ld] = __float2bfloat16(x);
        x = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
      }
      out[i + j * (uint64_t)d->ld] = __float2bfloat16(x);
    }
  return CUBLAS_STATUS_SUCCESS;
}
