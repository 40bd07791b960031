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

/* Switching fibers: glibc's swapcontext makes two sigprocmask system calls
 * per switch, which dominated whole emulated training runs (85% of the
 * time). On x86-64 a switch is instead the callee-saved registers, the
 * MXCSR and x87 control words and the stack pointer (emu_switch below);
 * under AddressSanitizer, which must see stack switches, and elsewhere,
 * ucontext stays. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define EMU_FAST_SWITCH 1
/* emu_switch(&save_sp, load_sp): saves this context on its stack and its
 * stack pointer in *save_sp, then resumes the context saved at load_sp */
extern "C" void emu_switch(void **save_sp, void *load_sp);
asm(R"(
  .text
  .globl emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
#else
#define EMU_FAST_SWITCH 0
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
void *emu_dynamic_smem;
size_t emu_dynamic_bytes, emu_allowed_smem = 48 * 1024;
static const size_t max_optin = 232448; /* H100 */
static const size_t stack_bytes = 1 << 18;

struct fiber {
  ucontext_t ctx;
  void *sp = nullptr; /* EMU_FAST_SWITCH: the saved stack pointer */
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
static void *sched_sp;
static const std::function<void()> *body_fn;
static long long progress;
long long emu_launches, emu_blocks, emu_switches;

[[noreturn]] static void die(const char *what) {
  fprintf(stderr, "EMULATOR ERROR: %s (block %u,%u,%u thread %u,%u,%u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
          threadIdx.x, threadIdx.y, threadIdx.z);
  abort();
}

/* from the running fiber to the scheduler, and back */
static void to_scheduler() {
#if EMU_FAST_SWITCH
  emu_switch(&fibers[current].sp, sched_sp);
#else
  swapcontext(&fibers[current].ctx, &sched_ctx);
#endif
}
static void to_fiber(int i) {
#if EMU_FAST_SWITCH
  emu_switch(&sched_sp, fibers[i].sp);
#else
  swapcontext(&sched_ctx, &fibers[i].ctx);
#endif
}

static void yield() {
  emu_switches++;
  to_scheduler();
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
  to_scheduler(); /* never resumed: the next launch starts the fiber afresh */
  abort();
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
#if EMU_FAST_SWITCH
  /* a stack that emu_switch "returns" into trampoline from: the saved
   * control words (MXCSR 0x1F80, x87 0x037F: the defaults), six zeroed
   * registers, trampoline's address, and a dummy return address so that
   * trampoline starts with the stack alignment of a called function */
  uintptr_t top = ((uintptr_t)f.stack + stack_bytes) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)top;
  *--sp = 0;                         /* trampoline's return address: never used */
  *--sp = (uint64_t)(uintptr_t)trampoline;
  for (int r = 0; r < 6; r++) *--sp = 0; /* rbp rbx r12 r13 r14 r15 */
  *--sp = 0x1F80ull | (0x037Full << 32);
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = stack_bytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, trampoline, 0);
#endif
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
        static const char *order = getenv("EMU_ORDER");
        static unsigned long long rng = 88172645463325252ull;
        static std::vector<int> perm;
        perm.resize(n_threads);
        for (int i = 0; i < n_threads; i++) perm[i] = i;
        if (order && !strcmp(order, "reverse"))
          for (int i = 0; i < n_threads; i++) perm[i] = n_threads - 1 - i;
        while (block_live > 0) {
          const long long before = progress;
          if (order && !strcmp(order, "random")) /* a fresh order every round */
            for (int i = n_threads - 1; i > 0; i--) {
              rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
              std::swap(perm[i], perm[rng % (unsigned long long)(i + 1)]);
            }
          for (int k = 0; k < n_threads; k++) {
            const int i = perm[k];
            if (fibers[i].done) continue;
            current = i;
            threadIdx = fibers[i].tid;
            to_fiber(i);
          }
          idle_rounds = progress == before ? idle_rounds + 1 : 0;
          if (idle_rounds > 3) die("deadlock: every live thread waits at a barrier nobody completes");
        }
        free(emu_dynamic_smem);
        emu_dynamic_smem = nullptr;
      }
}
