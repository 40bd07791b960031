/* elementwise — bias, residual adds, scaling, GELU and SwiGLU on bf16
 * tensors, in fp32 arithmetic. Grid-stride loops: any size, any launch. The
 * bias gradient is a column sum: each block sums a strip of columns over
 * every row in fp32, so no atomics and the result does not depend on timing.
 * SwiGLU (inp rows [gate (H) | up (H)], out = silu(gate)·up) runs one thread
 * per output element; its backward overwrites dinp, which may alias inp:
 * the thread that reads a (gate, up) pair is the only one that writes it,
 * after reading it. σ = 1/(1 + e^{−g}) saturates to 0 or 1, never NaN. */
#include "cuda_common.cuh"

#define GRID_STRIDE(i, n) \
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void bias_add_kernel(bf16 *out, const bf16 *bias, size_t n, int C) {
  GRID_STRIDE(i, n) store(out, i, load(out, i) + load(bias, i % C));
}
__global__ void add_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n) {
  GRID_STRIDE(i, n) store(out, i, load(a, i) + load(b, i));
}
__global__ void accumulate_kernel(bf16 *dst, const bf16 *src, size_t n) {
  GRID_STRIDE(i, n) store(dst, i, load(dst, i) + load(src, i));
}
__global__ void scale_kernel(bf16 *x, float factor, size_t n) {
  GRID_STRIDE(i, n) store(x, i, load(x, i) * factor);
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
__global__ void gelu_forward_kernel(bf16 *out, const bf16 *inp, size_t n) {
  GRID_STRIDE(i, n) {
    float x = load(inp, i);
    store(out, i, 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x))));
  }
}
__global__ void gelu_backward_kernel(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t n) {
  GRID_STRIDE(i, n) {
    float x = load(inp, i), u = GELU_SCALE * (x + 0.044715f * x * x * x), t = tanhf(u);
    float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
    store(dinp, i, (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du) * load(dout, i));
  }
}

__global__ void swiglu_forward_kernel(bf16 *out, const bf16 *inp, size_t n, int H) {
  GRID_STRIDE(i, n) {
    const size_t row = i / H, j = i % H;
    const bf16 *gate = inp + row * 2 * H;
    const float g = load(gate, j), sig = 1.0f / (1.0f + expf(-g));
    store(out, i, g * sig * load(gate, H + j));
  }
}
/* no __restrict__: dinp may be inp */
__global__ void swiglu_backward_kernel(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t n, int H) {
  GRID_STRIDE(i, n) {
    const size_t row = i / H, j = i % H, at = row * 2 * H + j;
    const float g = load(inp, at), u = load(inp, at + H), d = load(dout, i);
    const float sig = 1.0f / (1.0f + expf(-g));
    store(dinp, at, d * u * sig * (1.0f + g * (1.0f - sig)));
    store(dinp, at + H, d * g * sig);
  }
}

/* block (32 x 8 threads) sums 32 columns over all rows; lanes own columns */
__global__ void bias_backward_kernel(bf16 *dbias, const bf16 *dout, int N, int C) {
  __shared__ float partial[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float sum = 0;
  if (c < C)
    for (int n = threadIdx.y; n < N; n += 8) sum += load(dout, (size_t)n * C + c);
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int r = 1; r < 8; r++) sum += partial[r][threadIdx.x];
    store(dbias, c, load(dbias, c) + sum);
  }
}

void cuda_bias_add(act_t *out, const act_t *bias, int N, int C) {
  size_t n = (size_t)N * C;
  if (!n) return;
  bias_add_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(out), as_bf16(bias), n, C);
  CUDA_CHECK_LAUNCH();
}
void cuda_bias_backward(act_t *dbias, const act_t *dout, int N, int C) {
  if (!C) return;
  bias_backward_kernel<<<(C + 31) / 32, dim3(32, 8), 0, cuda_stream()>>>(as_bf16(dbias), as_bf16(dout), N, C);
  CUDA_CHECK_LAUNCH();
}
void cuda_add(act_t *out, const act_t *a, const act_t *b, size_t n) {
  if (!n) return;
  add_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(out), as_bf16(a), as_bf16(b), n);
  CUDA_CHECK_LAUNCH();
}
void cuda_accumulate(act_t *dst, const act_t *src, size_t n) {
  if (!n) return;
  accumulate_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(dst), as_bf16(src), n);
  CUDA_CHECK_LAUNCH();
}
/* a strided copy is what cudaMemcpy2D does: pitches and width in bytes */
void cuda_copy_rows(act_t *dst, int ld_dst, const act_t *src, int ld_src, int rows, int cols) {
  if (rows <= 0 || cols <= 0) return;
  CUDA_CHECK(cudaMemcpy2DAsync(as_bf16(dst), (size_t)ld_dst * sizeof(bf16), as_bf16(src), (size_t)ld_src * sizeof(bf16),
                               (size_t)cols * sizeof(bf16), (size_t)rows, cudaMemcpyDeviceToDevice, cuda_stream()));
}

void cuda_scale(act_t *x, float factor, size_t n) {
  if (!n) return;
  scale_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(x), factor, n);
  CUDA_CHECK_LAUNCH();
}
void cuda_gelu_forward(act_t *out, const act_t *inp, size_t n) {
  if (!n) return;
  gelu_forward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(out), as_bf16(inp), n);
  CUDA_CHECK_LAUNCH();
}
void cuda_gelu_backward(act_t *dinp, const act_t *inp, const act_t *dout, size_t n) {
  if (!n) return;
  gelu_backward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(dinp), as_bf16(inp), as_bf16(dout), n);
  CUDA_CHECK_LAUNCH();
}
void cuda_swiglu_forward(act_t *out, const act_t *inp, int N, int H) {
  const size_t n = (size_t)N * H;
  if (!n) return;
  swiglu_forward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(out), as_bf16(inp), n, H);
  CUDA_CHECK_LAUNCH();
}
void cuda_swiglu_backward(act_t *dinp, const act_t *inp, const act_t *dout, int N, int H) {
  const size_t n = (size_t)N * H;
  if (!n) return;
  swiglu_backward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_bf16(dinp), as_bf16(inp), as_bf16(dout),
                                                                        n, H);
  CUDA_CHECK_LAUNCH();
}
