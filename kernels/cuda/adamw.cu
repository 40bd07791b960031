/* adamw — AdamW on fp32 master weights from bf16 gradients (the update of
 * the CPU version, same order of operations), and the sum of squares of a
 * gradient for the global norm: per-block partial sums in double, summed on
 * the host, so the result does not depend on timing. */
#include "cuda_common.cuh"

__global__ void adamw_kernel(float *w, const bf16 *grad, float *mom, float *var, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, float correction1,
                             float correction2) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float g = load(grad, i) * grad_scale;
    float mi = beta1 * mom[i] + (1.0f - beta1) * g;
    float vi = beta2 * var[i] + (1.0f - beta2) * g * g;
    mom[i] = mi;
    var[i] = vi;
    float m_hat = mi / correction1, v_hat = vi / correction2;
    w[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * w[i]);
  }
}

void cuda_adamw(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, float grad_scale, int64_t step_t) {
  if (!n) return;
  const float correction1 = 1.0f - powf(beta1, (float)step_t);
  const float correction2 = 1.0f - powf(beta2, (float)step_t);
  adamw_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_f32(master), as_bf16(grad), as_f32(m), as_f32(v),
                                                              n, lr, beta1, beta2, eps, weight_decay, grad_scale,
                                                              correction1, correction2);
  CUDA_CHECK_LAUNCH();
}

#define SQ_BLOCKS 512
#define SQ_THREADS 256

__global__ void sum_squares_kernel(double *partial, const bf16 *x, size_t n) {
  __shared__ double lanes[SQ_THREADS];
  double sum = 0;
  for (size_t i = blockIdx.x * (size_t)SQ_THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * SQ_THREADS) {
    double v = load(x, i);
    sum += v * v;
  }
  lanes[threadIdx.x] = sum;
  __syncthreads();
  for (int half = SQ_THREADS / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) lanes[threadIdx.x] += lanes[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = lanes[0];
}

double cuda_sum_squares(const act_t *x, size_t n) {
  if (!n) return 0;
  /* no more blocks than the tensor fills: most tensors (biases, norms) take one */
  const size_t fill = (n + SQ_THREADS - 1) / SQ_THREADS;
  const int blocks = fill < SQ_BLOCKS ? (int)fill : SQ_BLOCKS;
  double *partial = (double *)cuda_scratch(SQ_BLOCKS * sizeof(double)), host[SQ_BLOCKS];
  sum_squares_kernel<<<blocks, SQ_THREADS, 0, cuda_stream()>>>(partial, as_bf16(x), n);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(host, partial, (size_t)blocks * sizeof(double), cudaMemcpyDeviceToHost, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  double sum = 0;
  for (int b = 0; b < blocks; b++) sum += host[b];
  return sum;
}
