/* emu_runtime — the emulator's scheduler (see run.sh): a launch runs its
 * blocks one after another; a block's threads are ucontext fibers that the
 * scheduler resumes in turn (in index order, or EMU_ORDER=reverse|random),
 * each running until it waits at a barrier. __syncthreads waits for the
 * block's live threads, __syncwarp and shuffles for the warp's (all 32
 * lanes must be live, as a full mask requires); a round in which no barrier
 * completes and no thread ends is a deadlock. */
#include <ucontext.h>
#include <vector>
#include <cuda_runtime.h>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
void *emu_dynamic_smem;
size_t emu_dynamic_bytes, emu_allowed_smem = 48 * 1024;
static const size_t max_optin = 232448; /* H100 */
static const size_t stack_bytes = 1 << 18;

struct fiber {
  ucontext_t ctx;
  char *stack = nullptr;
  bool done = false;
  uint3 tid;
};
struct barrier_t {
  int arrived = 0;
  unsigned gen = 0;
};
static std::vector<fiber> fibers;
static int current, block_live, n_threads;
static std::vector<int> warp_live, warp_size;
static barrier_t block_bar;
static std::vector<barrier_t> warp_bar;
static std::vector<double> slot;
static ucontext_t sched_ctx;
static const std::function<void()> *body_fn;
static long long progress;
long long emu_launches, emu_blocks, emu_switches;

[[noreturn]] static void die(const char *what) {
  fprintf(stderr, "EMULATOR ERROR: %s (block %u,%u,%u thread %u,%u,%u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
          threadIdx.x, threadIdx.y, threadIdx.z);
  abort();
}

static void yield() {
  emu_switches++;
  swapcontext(&fibers[current].ctx, &sched_ctx);
}

static void wait(barrier_t &b, const int &live) {
  const unsigned g = b.gen;
  b.arrived++;
  while (b.gen == g) {
    if (b.arrived >= live) {
      b.arrived = 0;
      b.gen++;
      progress++;
      break;
    }
    yield();
  }
}

static void trampoline() {
  (*body_fn)();
  fibers[current].done = true;
  block_live--;
  warp_live[current / 32]--;
  progress++;
  swapcontext(&fibers[current].ctx, &sched_ctx);
}

void __syncthreads() { wait(block_bar, block_live); }

static void warp_check(unsigned mask, const char *what) {
  const int w = current / 32;
  if (mask != 0xffffffffu) die("partial warp masks are not emulated");
  if (warp_size[w] != 32 || warp_live[w] != 32) {
    fprintf(stderr, "%s with a full mask but %d live lanes of %d\n", what, warp_live[w], warp_size[w]);
    die("warp operation with exited lanes");
  }
}

void __syncwarp(unsigned mask) {
  warp_check(mask, "__syncwarp");
  wait(warp_bar[current / 32], warp_live[current / 32]);
}

static double shuffle(double v, int src_lane) {
  const int w = current / 32;
  slot[current] = v;
  wait(warp_bar[w], warp_live[w]);
  const double r = slot[w * 32 + src_lane];
  wait(warp_bar[w], warp_live[w]);
  return r;
}
float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width) {
  warp_check(mask, "__shfl_xor_sync");
  if (width != 32) die("shuffle width");
  return (float)shuffle(v, (current % 32) ^ lane_mask);
}
double __shfl_xor_sync(unsigned mask, double v, int lane_mask, int width) {
  warp_check(mask, "__shfl_xor_sync");
  if (width != 32) die("shuffle width");
  return shuffle(v, (current % 32) ^ lane_mask);
}
float __shfl_sync(unsigned mask, float v, int src, int width) {
  warp_check(mask, "__shfl_sync");
  if (width != 32) die("shuffle width");
  return (float)shuffle(v, src);
}

static cudaError_t last_error = cudaSuccess;
cudaError_t cudaGetLastError() {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int) {
  if (attr != cudaDevAttrMaxSharedMemoryPerBlockOptin) die("attribute");
  *value = (int)max_optin;
  return cudaSuccess;
}

/* a fresh fiber for thread i (out of line: getcontext returns twice in spirit) */
static void init_fiber(unsigned i, dim3 block) {
  fiber &f = fibers[i];
  if (!f.stack) f.stack = (char *)malloc(stack_bytes);
  f.done = false;
  f.tid = {i % block.x, i / block.x % block.y, i / (block.x * block.y)};
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = stack_bytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, trampoline, 0);
}

void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &body) {
  const unsigned nt = block.x * block.y * block.z;
  if (!grid.x || !grid.y || !grid.z || !nt) die("launch with an empty grid or block (cudaErrorInvalidConfiguration)");
  if (nt > 1024 || grid.y > 65535 || grid.z > 65535 || block.z > 64) die("launch configuration out of range");
  if (smem_bytes > max_optin) die("dynamic shared memory above the device limit");
  if (smem_bytes > 48 * 1024 && smem_bytes > emu_allowed_smem) die("dynamic shared memory above 48 KiB not allowed");
  emu_launches++;
  gridDim = grid;
  blockDim = block;
  body_fn = &body;
  n_threads = (int)nt;
  if (fibers.size() < nt) fibers.resize(nt);
  const int n_warps = (int)(nt + 31) / 32;
  slot.assign((size_t)n_warps * 32, NAN);
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        emu_blocks++;
        blockIdx = {bx, by, bz};
        emu_dynamic_bytes = smem_bytes;
        emu_dynamic_smem = malloc(smem_bytes ? smem_bytes : 1);
        memset(emu_dynamic_smem, 0xFF, smem_bytes); /* NaN: reads before writes show */
        block_live = (int)nt;
        warp_live.assign(n_warps, 0);
        warp_size.assign(n_warps, 0);
        warp_bar.assign(n_warps, barrier_t{});
        block_bar = barrier_t{};
        for (unsigned i = 0; i < nt; i++) {
          init_fiber(i, block);
          warp_live[i / 32]++;
          warp_size[i / 32]++;
        }
        long long idle_rounds = 0;
        while (block_live > 0) {
          const long long before = progress;
          static const char *order = getenv("EMU_ORDER");
          static unsigned long long rng = 88172645463325252ull;
          std::vector<int> perm(n_threads);
          for (int i = 0; i < n_threads; i++) perm[i] = i;
          if (order && !strcmp(order, "reverse"))
            for (int i = 0; i < n_threads; i++) perm[i] = n_threads - 1 - i;
          if (order && !strcmp(order, "random"))
            for (int i = n_threads - 1; i > 0; i--) {
              rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
              std::swap(perm[i], perm[rng % (unsigned long long)(i + 1)]);
            }
          for (int k = 0; k < n_threads; k++) {
            const int i = perm[k];
            if (fibers[i].done) continue;
            current = i;
            threadIdx = fibers[i].tid;
            swapcontext(&sched_ctx, &fibers[i].ctx);
          }
          idle_rounds = progress == before ? idle_rounds + 1 : 0;
          if (idle_rounds > 3) die("deadlock: every live thread waits at a barrier nobody completes");
        }
        free(emu_dynamic_smem);
        emu_dynamic_smem = nullptr;
      }
}
