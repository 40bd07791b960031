/* rope — rotary position embedding on the q and k parts of qkv rows, in
 * place; half-split pairs (GPT-NeoX, Hugging Face Llama) as in
 * kernels/cpu/rope.c: for i < HS/2 the pair (x[i], x[i + HS/2]) of every q
 * and k head turns by angle = positions[n]·theta^(−2i/HS); the backward
 * turns dq and dk by −angle (the transpose). v is untouched.
 *
 * One block per row: its threads first compute the row's HS/2 angles and
 * their cos/sin in double (as the CPU does: an fp32 angle would be off by
 * position·2^-24 radians, 6e-3 at position 10^5) into shared memory, then
 * rotate the 2·NH·HS/2 pairs of the row in fp32, one pair per thread step. */
#include "cuda_common.cuh"

#define ROPE_THREADS 128

/* dynamic shared memory: HS floats (cos, then ±sin) */
__global__ void rope_kernel(bf16 *qkv, const int32_t *positions, int C, int NH, int HS, float theta, int direction) {
  extern __shared__ float trig[];
  const int half = HS / 2, n = blockIdx.x;
  float *cs = trig, *sn = trig + half;
  const double pos = (double)positions[n];
  for (int i = threadIdx.x; i < half; i += ROPE_THREADS) {
    const double angle = pos * pow((double)theta, -2.0 * i / HS);
    double s, c;
    sincos(angle, &s, &c);
    cs[i] = (float)c;
    sn[i] = (float)(direction * s);
  }
  __syncthreads();
  bf16 *row = qkv + (size_t)n * 3 * C;
  for (int p = threadIdx.x; p < 2 * NH * half; p += ROPE_THREADS) { /* q heads, then k heads */
    const int head = p / half, i = p % half;
    const size_t lo = (size_t)head * HS + i, hi = lo + half;
    const float a = load(row, lo), b = load(row, hi);
    store(row, lo, a * cs[i] - b * sn[i]);
    store(row, hi, b * cs[i] + a * sn[i]);
  }
}

static void rope(act_t *qkv, const ids_t *positions, int N, int C, int NH, float theta, int direction) {
  if (!N || !NH) return;
  const int HS = C / NH;
  if (HS % 2 || HS * NH != C)
    fail_local(EXIT_USER_ERROR, "rope: head size %d (C %d, %d heads) must be even", HS, C, NH);
  rope_kernel<<<(unsigned)N, ROPE_THREADS, (size_t)HS * sizeof(float), cuda_stream()>>>(
      as_bf16(qkv), as_ids(positions), C, NH, HS, theta, direction);
  CUDA_CHECK_LAUNCH();
}

void cuda_rope_forward(act_t *qkv, const ids_t *positions, int N, int C, int NH, float theta) {
  rope(qkv, positions, N, C, NH, theta, +1);
}

void cuda_rope_backward(act_t *dqkv, const ids_t *positions, int N, int C, int NH, float theta) {
  rope(dqkv, positions, N, C, NH, theta, -1);
}
