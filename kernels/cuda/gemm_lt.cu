/* gemm_lt — the linear layer's forward with its epilogue fused, through
 * cuBLASLt: gemm_bias (out = inp·Wᵀ + bias) and gemm_bias_gelu (the same,
 * then GELU, with the pre-activation written too). bf16 A, B, D and bias,
 * fp32 accumulation and scale (CUBLAS_COMPUTE_32F, CUDA_R_32F).
 *
 * Layout, as in gemm.cu: cuBLASLt is column-major, so it computes the
 * row-major out[N, OC] as the column-major outᵀ[OC, N] = W·inpᵀ: A = W
 * (stored [OC, IC] row-major = IC×OC column-major, op T), B = inp (IC×N
 * column-major, op N), D m×n = OC×N with ld OC. CUBLASLT_EPILOGUE_BIAS adds
 * a vector of length m broadcast over the n columns — m = OC, one bias per
 * output feature, which is the row-major per-row bias. GELU_AUX_BIAS writes
 * the biased sum to the aux matrix (same layout, ld OC) and GELU of it, the
 * tanh form that gelu_forward computes, to D.
 *
 * The algorithm is asked of cublasLtMatmulAlgoGetHeuristic once per key
 * (shape, epilogue, and the alignment of every pointer, since the heuristic
 * picks from the pointers' alignment) and cached, so a training step does
 * not query again. Descriptors are host-side objects, made per call. Where
 * cuBLASLt offers no algorithm, or GELU's aux leading dimension OC is not a
 * multiple of 8 (as cuBLASLt requires), the op runs unfused: cuda_gemm,
 * then the bias and GELU kernels — the same result up to bf16 rounding.
 */
#include <stdint.h>
#include <string.h>

#include "cuda_common.cuh"

/* what the heuristic's answer depends on */
typedef struct lt_key {
  int N, IC, OC;
  uint32_t epilogue;
  uint32_t align_w, align_inp, align_out, align_bias, align_pre; /* bytes, ≤ 256 */
} lt_key;
typedef struct lt_entry {
  lt_key key;
  bool found; /* false: cuBLASLt has no algorithm for it; run unfused */
  cublasLtMatmulAlgo_t algo;
} lt_entry;

/* A model has a handful of shapes (qkv and fc per layer kind, × pointer
 * alignments); past this many, the oldest entry is overwritten. */
#define LT_CACHE_ENTRIES 64
static lt_entry cache[LT_CACHE_ENTRIES];
static int n_cached, next_overwrite;

/* the largest power of two ≤ 256 dividing the address (256: cuBLASLt's default assumption) */
static uint32_t alignment_bytes(const void *p) {
  const uintptr_t address = (uintptr_t)p;
  uint32_t align = 256;
  while (align > 1 && address % align) align >>= 1;
  return align;
}

/* the descriptors of one call */
typedef struct lt_problem {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t w, inp, out;
} lt_problem;

/* an attribute from a variable of its documented type; macros, so that a
 * failure names the attribute and the line */
#define SET_OP(desc, attribute, value) \
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute((desc), (attribute), &(value), sizeof(value)))
#define SET_PREFERENCE(preference, attribute, value) \
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute((preference), (attribute), &(value), sizeof(value)))

static lt_problem describe(cublasLtEpilogue_t epilogue, const bf16 *bias, bf16 *pre, int N, int IC, int OC) {
  lt_problem p;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t trans_w = CUBLAS_OP_T, trans_inp = CUBLAS_OP_N, bf16_type = CUDA_R_16BF;
  const uint32_t epilogue_value = (uint32_t)epilogue;
  SET_OP(p.op, CUBLASLT_MATMUL_DESC_TRANSA, trans_w);
  SET_OP(p.op, CUBLASLT_MATMUL_DESC_TRANSB, trans_inp);
  SET_OP(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue_value);
  SET_OP(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  SET_OP(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, bf16_type);
  if (pre) {
    const int64_t pre_ld = OC;
    SET_OP(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, pre);
    SET_OP(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, pre_ld);
    SET_OP(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, bf16_type);
  }
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.w, CUDA_R_16BF, (uint64_t)IC, (uint64_t)OC, IC));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.inp, CUDA_R_16BF, (uint64_t)IC, (uint64_t)N, IC));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.out, CUDA_R_16BF, (uint64_t)OC, (uint64_t)N, OC));
  return p;
}

static void release(lt_problem *p) {
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->out));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->inp));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->w));
  CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->op));
}

/* the cached entry for the key, asking the heuristic on a miss */
static const lt_entry *algorithm_for(const lt_key *key, const lt_problem *p) {
  for (int i = 0; i < n_cached; i++)
    if (memcmp(&cache[i].key, key, sizeof *key) == 0) return &cache[i];
  lt_entry *e = n_cached < LT_CACHE_ENTRIES ? &cache[n_cached++] : &cache[next_overwrite++ % LT_CACHE_ENTRIES];
  memset(e, 0, sizeof *e);
  e->key = *key;
  cublasLtMatmulPreference_t preference;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t workspace_bytes = CUDA_LT_WORKSPACE_BYTES;
  SET_PREFERENCE(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace_bytes);
  /* parameters and activations sit at element offsets inside larger buffers: say how aligned they are */
  SET_PREFERENCE(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key->align_w);
  SET_PREFERENCE(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key->align_inp);
  SET_PREFERENCE(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key->align_out);
  SET_PREFERENCE(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key->align_out);
  cublasLtMatmulHeuristicResult_t result;
  memset(&result, 0, sizeof result);
  int n_found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(cuda_blas_lt(), p->op, p->w, p->inp, p->out, p->out,
                                                               preference, 1, &result, &n_found);
  /* NOT_SUPPORTED: no algorithm for this configuration, which the unfused path serves */
  if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED)
    fail_local(EXIT_INTERNAL_ERROR, "cuBLAS: cublasLtMatmulAlgoGetHeuristic(N %d, IC %d, OC %d) failed: %s", key->N,
               key->IC, key->OC, cublasGetStatusString(status));
  e->found = status == CUBLAS_STATUS_SUCCESS && n_found > 0 && result.state == CUBLAS_STATUS_SUCCESS &&
             result.workspaceSize <= CUDA_LT_WORKSPACE_BYTES;
  if (e->found) e->algo = result.algo;
  CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
  return e;
}

/* the fused matmul; false when cuBLASLt cannot do it and the caller runs unfused */
static bool lt_linear(bf16 *out, bf16 *pre, const bf16 *inp, const bf16 *weight, const bf16 *bias, int N, int IC,
                      int OC) {
  if (pre && OC % 8 != 0) return false; /* the aux leading dimension must be a multiple of 8 */
  const cublasLtEpilogue_t epilogue = pre ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_BIAS;
  lt_key key;
  memset(&key, 0, sizeof key); /* padding too: keys are compared with memcmp */
  key.N = N, key.IC = IC, key.OC = OC, key.epilogue = (uint32_t)epilogue;
  key.align_w = alignment_bytes(weight), key.align_inp = alignment_bytes(inp), key.align_out = alignment_bytes(out);
  key.align_bias = alignment_bytes(bias), key.align_pre = pre ? alignment_bytes(pre) : 0;
  lt_problem p = describe(epilogue, bias, pre, N, IC, OC);
  const lt_entry *e = algorithm_for(&key, &p);
  if (e->found) {
    const float one = 1.0f, zero = 0.0f; /* host pointer mode, cuBLASLt's default */
    CUBLAS_CHECK(cublasLtMatmul(cuda_blas_lt(), p.op, &one, weight, p.w, inp, p.inp, &zero, out, p.out, out, p.out,
                                &e->algo, cuda_lt_workspace(), CUDA_LT_WORKSPACE_BYTES, cuda_stream()));
  }
  release(&p);
  return e->found;
}

void cuda_gemm_bias(act_t *out, const act_t *inp, const act_t *weight, const act_t *bias, int N, int IC, int OC) {
  if (N == 0 || OC == 0) return;
  if (IC > 0 && lt_linear(as_bf16(out), NULL, as_bf16(inp), as_bf16(weight), as_bf16(bias), N, IC, OC)) return;
  cuda_gemm(false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC);
  cuda_bias_add(out, bias, N, OC);
}

void cuda_gemm_bias_gelu(act_t *out, act_t *pre, const act_t *inp, const act_t *weight, const act_t *bias, int N,
                         int IC, int OC) {
  if (N == 0 || OC == 0) return;
  if (IC > 0 && lt_linear(as_bf16(out), as_bf16(pre), as_bf16(inp), as_bf16(weight), as_bf16(bias), N, IC, OC))
    return;
  cuda_gemm_bias(pre, inp, weight, bias, N, IC, OC);
  cuda_gelu_forward(out, pre, (size_t)N * OC);
}
