// The host emulation of the CUDA runtime declared in cuda_runtime.h beside this file: device memory,
// streams, events and copies on the CPU, and a fiber scheduler that runs a kernel's threads.
//
// Kernels: one block at a time (blockIdx x fastest, then y, z); each thread of the block is a fiber on
// its own stack (x86-64: a hand-written register switch; elsewhere ucontext). The scheduler runs every
// ready fiber until it reaches a barrier or returns, in a seeded shuffled order (environment
// SPILLWAY_HOST_CUDA_ORDER = shuffle | forward | backward, SPILLWAY_HOST_CUDA_SEED), then releases:
// - a warp whose 32 lanes all wait at warp collectives, after checking that they are the same call
//   (same kind and line) with a full mask; lanes that exited or wait at __syncthreads instead fail the
//   launch (divergence);
// - otherwise, the block, when every thread still running waits at __syncthreads on the same line.
// Anything else is a divergence or a deadlock, reported as a launch failure naming the lines.
//
// Memory: cudaMalloc memory is host memory from a budget (SPILLWAY_HOST_CUDA_DEVICE_BYTES, default
// 1 GiB), 256-byte aligned and filled with 0xFF bytes (NaN floats and halves); shared memory is
// filled the same way when each block starts. Copies check the direction they name against the
// allocations. Every call completes before it returns, so streams and events are trivially ordered;
// events record the host clock.
#include "cuda_runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
// Built with -fsanitize=address (build-cuda-host.mjs --sanitize), every stack switch is announced to
// AddressSanitizer, which otherwise takes a fiber's frames for overflows of the scheduler's stack.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SPW_ASAN_START(fake, bottom, size) __sanitizer_start_switch_fiber((fake), (bottom), (size))
#define SPW_ASAN_FINISH(fake, bottom, size) __sanitizer_finish_switch_fiber((fake), (bottom), (size))
#else
#define SPW_ASAN_START(fake, bottom, size) ((void)0)
#define SPW_ASAN_FINISH(fake, bottom, size) ((void)0)
#endif

namespace spw_host {

uint3 currentThreadIdx{0, 0, 0};
uint3 currentBlockIdx{0, 0, 0};
dim3 currentBlockDim{1, 1, 1};
dim3 currentGridDim{1, 1, 1};

namespace {

// ---- errors ---------------------------------------------------------------------------------------

cudaError_t lastError = cudaSuccess;
// The explanation of the latest emulator-detected error, which cudaGetErrorString returns for its code.
cudaError_t detailError = cudaSuccess;
std::string detail;

cudaError_t record(cudaError_t error, const char* format, va_list args) {
  char message[1024];
  vsnprintf(message, sizeof message, format, args);
  detail = message;
  detailError = error;
  lastError = error;
  return error;
}

cudaError_t reject(cudaError_t error, const char* format, ...) {
  va_list args;
  va_start(args, format);
  record(error, format, args);
  va_end(args);
  return error;
}

// ---- memory ---------------------------------------------------------------------------------------

constexpr size_t kDeviceAlignment = 256;

size_t environmentSize(const char* name, size_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || value == 0) {
    std::fprintf(stderr, "spillway host CUDA emulation: ignoring %s=%s (expected a positive integer)\n", name, text);
    return fallback;
  }
  return (size_t)value;
}

size_t deviceCapacity() {
  static const size_t capacity = environmentSize("SPILLWAY_HOST_CUDA_DEVICE_BYTES", (size_t)1 << 30);
  return capacity;
}

std::map<uintptr_t, size_t>& deviceAllocations() {
  static std::map<uintptr_t, size_t> allocations;
  return allocations;
}
// Each allocation's size rounded up to 256 bytes: what it takes from the budget.
std::map<uintptr_t, size_t>& deviceGranules() {
  static std::map<uintptr_t, size_t> granules;
  return granules;
}
size_t deviceBytesInUse = 0;
std::set<uintptr_t>& hostAllocations() {
  static std::set<uintptr_t> allocations;
  return allocations;
}

// The allocation holding [p, p + bytes), or end().
std::map<uintptr_t, size_t>::const_iterator deviceAllocationOf(const void* pointer, size_t bytes) {
  const auto& allocations = deviceAllocations();
  const uintptr_t p = (uintptr_t)pointer;
  auto it = allocations.upper_bound(p);
  if (it == allocations.begin()) return allocations.end();
  --it;
  if (p - it->first > it->second || bytes > it->second - (p - it->first)) return allocations.end();
  return it;
}

bool touchesDevice(const void* pointer, size_t bytes) {
  const uintptr_t p = (uintptr_t)pointer;
  const auto& allocations = deviceAllocations();
  auto it = allocations.upper_bound(p + (bytes > 0 ? bytes - 1 : 0));
  if (it == allocations.begin()) return false;
  --it;
  return it->first + it->second > p;
}

// ---- streams and events ---------------------------------------------------------------------------

std::set<const CUstream_st*>& streams() {
  static std::set<const CUstream_st*> all;
  return all;
}

bool validStream(cudaStream_t stream) { return stream == nullptr || streams().count(stream) > 0; }

double nowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// ---- fibers ---------------------------------------------------------------------------------------

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxSharedBytes = 48 * 1024;

enum class State { Ready, AtBlockBarrier, AtWarpBarrier, Done };
enum class WarpOp { None, Shuffle, Vote, Wmma };

const char* opName(WarpOp op) {
  switch (op) {
    case WarpOp::Shuffle: return "__shfl_xor_sync";
    case WarpOp::Vote: return "__any_sync";
    case WarpOp::Wmma: return "a WMMA call";
    default: return "nothing";
  }
}

#if defined(__x86_64__)
// switchStack(&from, to): saves the callee-saved registers on the current stack, stores its stack
// pointer in *from, loads `to` and restores the registers saved there.
extern "C" void spw_host_switch_stack(void** from, void* to);
extern "C" void spw_host_fiber_entry();
asm(R"(
  .text
  .p2align 4
  .globl spw_host_switch_stack
  .hidden spw_host_switch_stack
  .type spw_host_switch_stack, @function
spw_host_switch_stack:
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
  .size spw_host_switch_stack, .-spw_host_switch_stack
)");
#endif

struct Fiber {
  char* stack = nullptr;  // kStackBytes above a guard page
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t context;
#endif
  uint3 idx{0, 0, 0};
  unsigned linear = 0;
  State state = State::Done;
  WarpOp op = WarpOp::None;
  unsigned mask = 0;
  int line = 0;
  const char* what = "";
};

struct Warp {
  uint64_t slots[2][32];
  unsigned operations[32];  // warp collectives each lane has finished: picks the slot set
};

struct Scheduler {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  std::vector<unsigned> order;
#if defined(__x86_64__)
  void* schedulerSp = nullptr;
#else
  ucontext_t schedulerContext;
#endif
  Fiber* current = nullptr;
  const char* kernel = "";
  void (*body)(void*) = nullptr;
  void* context = nullptr;
  bool failed = false;
  std::vector<char> dynamicShared;
  // Static __shared__ arrays the running block has reached (poisoned once per block).
  std::set<void*> sharedSeen;
  uint64_t rng = 1;
  int orderMode = 0;  // 0 shuffle, 1 forward, 2 backward
  // AddressSanitizer's view of the scheduler's stack and fake stacks (unused without --sanitize).
  const void* schedulerStackBottom = nullptr;
  size_t schedulerStackBytes = 0;
  void* schedulerFakeStack = nullptr;
  void* fiberFakeStack = nullptr;
};

Scheduler& scheduler() {
  static Scheduler s = [] {
    Scheduler fresh;
    const char* order = std::getenv("SPILLWAY_HOST_CUDA_ORDER");
    if (order != nullptr && std::string(order) == "forward") fresh.orderMode = 1;
    else if (order != nullptr && std::string(order) == "backward") fresh.orderMode = 2;
    else if (order != nullptr && *order != '\0' && std::string(order) != "shuffle")
      std::fprintf(stderr, "spillway host CUDA emulation: ignoring SPILLWAY_HOST_CUDA_ORDER=%s (expected shuffle, forward or backward)\n", order);
    fresh.rng = environmentSize("SPILLWAY_HOST_CUDA_SEED", 1);
    return fresh;
  }();
  return s;
}

uint64_t nextRandom(Scheduler& s) {
  // splitmix64
  uint64_t z = (s.rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// `finished`: the fiber will never run again (its fake stack, under ASan, is released).
void switchToScheduler(Scheduler& s, bool finished = false) {
  Fiber* f = s.current;
  SPW_ASAN_START(finished ? nullptr : &s.fiberFakeStack, s.schedulerStackBottom, s.schedulerStackBytes);
#if defined(__x86_64__)
  spw_host_switch_stack(&f->sp, s.schedulerSp);
#else
  swapcontext(&f->context, &s.schedulerContext);
#endif
  SPW_ASAN_FINISH(s.fiberFakeStack, nullptr, nullptr);
}

[[noreturn]] void fiberMain() {
  Scheduler& s = scheduler();
  SPW_ASAN_FINISH(nullptr, &s.schedulerStackBottom, &s.schedulerStackBytes);
  s.body(s.context);
  s.current->state = State::Done;
  switchToScheduler(s, true);
  std::abort();  // a finished fiber is never resumed
}

#if defined(__x86_64__)
extern "C" void spw_host_fiber_start() { fiberMain(); }
asm(R"(
  .text
  .p2align 4
  .globl spw_host_fiber_entry
  .hidden spw_host_fiber_entry
  .type spw_host_fiber_entry, @function
spw_host_fiber_entry:
  call spw_host_fiber_start
  ud2
  .size spw_host_fiber_entry, .-spw_host_fiber_entry
)");
#endif

void allocateStacks(Scheduler& s, size_t count) {
  while (s.fibers.size() < count) {
    Fiber f;
    void* region = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) {
      std::fprintf(stderr, "spillway host CUDA emulation: cannot map a fiber stack\n");
      std::abort();
    }
    mprotect(region, kGuardBytes, PROT_NONE);  // stacks grow down into the guard page
    f.stack = static_cast<char*>(region) + kGuardBytes;
    s.fibers.push_back(f);
  }
}

void startFiber(Scheduler& s, Fiber& f) {
#if defined(__x86_64__)
  // The initial frame spw_host_switch_stack pops: mxcsr/fpu control word, six registers, then the
  // return address (spw_host_fiber_entry).
  uintptr_t top = ((uintptr_t)(f.stack + kStackBytes)) & ~(uintptr_t)15;
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = (uint64_t)(uintptr_t)&spw_host_fiber_entry;  // after `ret` pops it, rsp is 16-byte aligned for the call
  for (int i = 0; i < 6; i++) *--sp = 0;
  --sp;
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  std::memcpy(reinterpret_cast<char*>(sp), &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpucw, 2);
  f.sp = sp;
#else
  getcontext(&f.context);
  f.context.uc_stack.ss_sp = f.stack;
  f.context.uc_stack.ss_size = kStackBytes;
  f.context.uc_link = nullptr;
  makecontext(&f.context, reinterpret_cast<void (*)()>(&fiberMain), 0);
#endif
  (void)s;
  f.state = State::Ready;
  f.op = WarpOp::None;
}

void resume(Scheduler& s, Fiber& f) {
  s.current = &f;
  currentThreadIdx = f.idx;
  SPW_ASAN_START(&s.schedulerFakeStack, f.stack, kStackBytes);
#if defined(__x86_64__)
  spw_host_switch_stack(&s.schedulerSp, f.sp);
#else
  swapcontext(&s.schedulerContext, &f.context);
#endif
  SPW_ASAN_FINISH(s.schedulerFakeStack, nullptr, nullptr);
  s.current = nullptr;
}

// Stops the block: the running fiber goes back to the scheduler for good.
[[noreturn]] void abandonFiber(Scheduler& s) {
  s.failed = true;
  s.current->state = State::Done;
  switchToScheduler(s, true);
  std::abort();
}

void failLaunch(Scheduler& s, const char* kernel, const std::string& why) {
  s.failed = true;
  reject(cudaErrorLaunchFailure, "%s, block (%u, %u, %u): %s", kernel, currentBlockIdx.x, currentBlockIdx.y, currentBlockIdx.z, why.c_str());
}

std::string format(const char* f, ...) {
  char buffer[512];
  va_list args;
  va_start(args, f);
  vsnprintf(buffer, sizeof buffer, f, args);
  va_end(args);
  return buffer;
}

// Runs one block to completion; false on a failure (the launch error is set).
bool runBlock(Scheduler& s, const char* kernel, unsigned threads) {
  s.failed = false;
  s.sharedSeen.clear();
  if (!s.dynamicShared.empty()) std::memset(s.dynamicShared.data(), 0xFF, s.dynamicShared.size());
  const unsigned warps = (threads + 31) / 32;
  s.warps.assign(warps, Warp{});
  s.order.resize(threads);
  for (unsigned t = 0; t < threads; t++) {
    Fiber& f = s.fibers[t];
    f.linear = t;
    f.idx = uint3{t % currentBlockDim.x, (t / currentBlockDim.x) % currentBlockDim.y, t / (currentBlockDim.x * currentBlockDim.y)};
    startFiber(s, f);
    s.order[t] = t;
  }
  unsigned live = threads;
  while (live > 0) {
    if (s.orderMode == 0) {
      for (unsigned i = threads; i > 1; i--) std::swap(s.order[i - 1], s.order[nextRandom(s) % i]);
    } else if (s.orderMode == 2) {
      for (unsigned i = 0; i < threads; i++) s.order[i] = threads - 1 - i;
    }
    for (unsigned i = 0; i < threads; i++) {
      Fiber& f = s.fibers[s.order[i]];
      if (f.state != State::Ready) continue;
      resume(s, f);
      if (s.failed) return false;
    }
    live = 0;
    for (unsigned t = 0; t < threads; t++) live += s.fibers[t].state != State::Done;
    if (live == 0) break;
    // Warps whose lanes all wait at the same warp collective go on.
    bool released = false;
    for (unsigned w = 0; w < warps; w++) {
      unsigned waiting = 0, done = 0, atBlock = 0;
      const Fiber* first = nullptr;
      for (unsigned l = 0; l < 32 && w * 32 + l < threads; l++) {
        const Fiber& f = s.fibers[w * 32 + l];
        if (f.state == State::AtWarpBarrier) {
          waiting++;
          if (first == nullptr) first = &f;
        } else if (f.state == State::Done) {
          done++;
        } else if (f.state == State::AtBlockBarrier) {
          atBlock++;
        }
      }
      if (waiting == 0) continue;
      if (w * 32 + 32 > threads) {
        failLaunch(s, kernel, format("%s at line %d in a partial warp (%u threads per block): the emulation needs whole warps", first->what, first->line, threads));
        return false;
      }
      if (waiting < 32) {
        failLaunch(s, kernel, format("warp %u diverged: %u lanes wait at %s (line %d), %u exited, %u wait at __syncthreads", w, waiting, first->what, first->line, done, atBlock));
        return false;
      }
      for (unsigned l = 0; l < 32; l++) {
        const Fiber& f = s.fibers[w * 32 + l];
        if (f.op != first->op || f.line != first->line || f.mask != first->mask) {
          failLaunch(s, kernel, format("warp %u diverged: lane 0 waits at %s (line %d, mask 0x%x), lane %u at %s (line %d, mask 0x%x)", w, first->what, first->line, first->mask, l, f.what, f.line, f.mask));
          return false;
        }
      }
      if (first->mask != 0xFFFFFFFFu) {
        failLaunch(s, kernel, format("%s at line %d with mask 0x%x: the emulation supports full-warp masks only", first->what, first->line, first->mask));
        return false;
      }
      for (unsigned l = 0; l < 32; l++) s.fibers[w * 32 + l].state = State::Ready;
      released = true;
    }
    if (released) continue;
    // Otherwise every running thread must wait at the same __syncthreads.
    const Fiber* first = nullptr;
    for (unsigned t = 0; t < threads; t++) {
      const Fiber& f = s.fibers[t];
      if (f.state != State::AtBlockBarrier) continue;
      if (first == nullptr) {
        first = &f;
      } else if (f.line != first->line) {
        failLaunch(s, kernel, format("threads wait at different __syncthreads: thread %u at line %d, thread %u at line %d", first->linear, first->line, f.linear, f.line));
        return false;
      }
    }
    if (first == nullptr) {
      failLaunch(s, kernel, "deadlock: no thread can go on");
      return false;
    }
    for (unsigned t = 0; t < threads; t++) {
      if (s.fibers[t].state == State::AtBlockBarrier) s.fibers[t].state = State::Ready;
    }
  }
  return true;
}

// `what`: the call, for divergence reports (default: the kind of collective).
void waitAtWarpBarrier(WarpOp op, unsigned mask, int line, const char* what = nullptr) {
  Scheduler& s = scheduler();
  Fiber* f = s.current;
  if (f == nullptr) {
    std::fprintf(stderr, "spillway host CUDA emulation: %s called outside a kernel\n", opName(op));
    std::abort();
  }
  f->op = op;
  f->mask = mask;
  f->line = line;
  f->what = what != nullptr ? what : opName(op);
  f->state = State::AtWarpBarrier;
  switchToScheduler(s);
}

}  // namespace

// ---- kernel-side API ------------------------------------------------------------------------------

void syncthreads(int line) {
  Scheduler& s = scheduler();
  Fiber* f = s.current;
  if (f == nullptr) {
    std::fprintf(stderr, "spillway host CUDA emulation: __syncthreads called outside a kernel\n");
    std::abort();
  }
  f->line = line;
  f->op = WarpOp::None;
  f->state = State::AtBlockBarrier;
  switchToScheduler(s);
}

uint64_t shuffleXor(unsigned mask, uint64_t bits, int laneMask, int line) {
  Scheduler& s = scheduler();
  const unsigned lane = s.current->linear & 31;
  Warp& w = s.warps[s.current->linear >> 5];
  const unsigned set = w.operations[lane] & 1;
  w.slots[set][lane] = bits;
  waitAtWarpBarrier(WarpOp::Shuffle, mask, line);
  const uint64_t result = w.slots[set][(lane ^ (unsigned)laneMask) & 31];
  w.operations[lane]++;
  return result;
}

int anyLane(unsigned mask, int predicate, int line) {
  Scheduler& s = scheduler();
  const unsigned lane = s.current->linear & 31;
  Warp& w = s.warps[s.current->linear >> 5];
  const unsigned set = w.operations[lane] & 1;
  w.slots[set][lane] = predicate != 0;
  waitAtWarpBarrier(WarpOp::Vote, mask, line);
  int any = 0;
  for (unsigned l = 0; l < 32; l++) any |= w.slots[set][l] != 0;
  w.operations[lane]++;
  return any;
}

void warpCollective(const char* what, int line) {
  waitAtWarpBarrier(WarpOp::Wmma, 0xFFFFFFFFu, line, what);
}

unsigned laneId() {
  Scheduler& s = scheduler();
  return s.current == nullptr ? 0 : s.current->linear & 31;
}

void fail(const char* format, ...) {
  Scheduler& s = scheduler();
  va_list args;
  va_start(args, format);
  char message[512];
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  if (s.current == nullptr) {
    std::fprintf(stderr, "spillway host CUDA emulation: %s (outside a kernel)\n", message);
    std::abort();
  }
  reject(cudaErrorLaunchFailure, "%s, thread (%u, %u, %u) of block (%u, %u, %u): %s", s.kernel, currentThreadIdx.x, currentThreadIdx.y, currentThreadIdx.z,
         currentBlockIdx.x, currentBlockIdx.y, currentBlockIdx.z, message);
  abandonFiber(s);
}

void* dynamicSharedMemory() {
  Scheduler& s = scheduler();
  return s.dynamicShared.empty() ? nullptr : s.dynamicShared.data();
}

void sharedDeclared(void* storage, size_t bytes) {
  Scheduler& s = scheduler();
  if (s.sharedSeen.insert(storage).second) std::memset(storage, 0xFF, bytes);
}

bool isDeviceRange(const void* pointer, size_t bytes) { return deviceAllocationOf(pointer, bytes) != deviceAllocations().end(); }

void setLaunchError(cudaError_t error, const char* format, ...) {
  va_list args;
  va_start(args, format);
  record(error, format, args);
  va_end(args);
}

bool runGrid(const char* kernel, dim3 grid, dim3 block, size_t sharedBytes, cudaStream_t stream, void (*body)(void*), void* context) {
  Scheduler& s = scheduler();
  if (s.current != nullptr) {
    std::fprintf(stderr, "spillway host CUDA emulation: %s launched from inside a kernel\n", kernel);
    std::abort();
  }
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 || threads > kMaxThreadsPerBlock || block.z > 64 || grid.y > 65535 || grid.z > 65535 ||
      grid.x > 2147483647u) {
    reject(cudaErrorInvalidConfiguration, "%s: invalid configuration: grid (%u, %u, %u), block (%u, %u, %u)", kernel, grid.x, grid.y, grid.z, block.x, block.y, block.z);
    return false;
  }
  if (sharedBytes > kMaxSharedBytes) {
    reject(cudaErrorInvalidValue, "%s: %zu bytes of dynamic shared memory (at most %zu without opting in)", kernel, sharedBytes, kMaxSharedBytes);
    return false;
  }
  if (!validStream(stream)) {
    reject(cudaErrorInvalidResourceHandle, "%s: launched on an unknown or destroyed stream", kernel);
    return false;
  }
  allocateStacks(s, (size_t)threads);
  s.kernel = kernel;
  s.body = body;
  s.context = context;
  s.dynamicShared.assign(sharedBytes, (char)0xFF);
  currentGridDim = grid;
  currentBlockDim = block;
  for (unsigned z = 0; z < grid.z; z++) {
    for (unsigned y = 0; y < grid.y; y++) {
      for (unsigned x = 0; x < grid.x; x++) {
        currentBlockIdx = uint3{x, y, z};
        if (!runBlock(s, kernel, (unsigned)threads)) return false;
      }
    }
  }
  return true;
}

}  // namespace spw_host

// ---- runtime API ----------------------------------------------------------------------------------

using spw_host::reject;

struct CUstream_st {
  int id;
};
struct CUevent_st {
  bool timing;
  bool recorded;
  double ms;
};

namespace {

std::set<const CUevent_st*>& events() {
  static std::set<const CUevent_st*> all;
  return all;
}

bool validEvent(cudaEvent_t event) { return event != nullptr && events().count(event) > 0; }

}  // namespace

cudaError_t cudaGetLastError() {
  const cudaError_t error = spw_host::lastError;
  spw_host::lastError = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError() { return spw_host::lastError; }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  if (error == spw_host::detailError && !spw_host::detail.empty()) return spw_host::detail.c_str();
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
  }
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 0;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  *version = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return reject(cudaErrorInvalidDevice, "device %d does not exist (the host emulation has device 0 only)", device);
  return cudaSuccess;
}

static int emulatedMultiprocessors() {
  static const int count = (int)std::min<size_t>(spw_host::environmentSize("SPILLWAY_HOST_CUDA_SMS", 4), 1024);
  return count;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return reject(cudaErrorInvalidDevice, "device %d does not exist (the host emulation has device 0 only)", device);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "Spillway host emulation (CPU, not a GPU)");
  p->totalGlobalMem = spw_host::deviceCapacity();
  p->major = 0;
  p->minor = 0;
  p->multiProcessorCount = emulatedMultiprocessors();
  p->l2CacheSize = 0;
  p->memoryBusWidth = 0;
  p->sharedMemPerBlockOptin = spw_host::kMaxSharedBytes;
  // A PCI address no machine has, so no PCIe link is read for it.
  p->pciDomainID = 0xFFFF;
  p->pciBusID = 0xFF;
  p->pciDeviceID = 0x1F;
  p->asyncEngineCount = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  if (device != 0) return reject(cudaErrorInvalidDevice, "device %d does not exist", device);
  if (attribute != cudaDevAttrMultiProcessorCount) return reject(cudaErrorInvalidValue, "attribute %d is not emulated", (int)attribute);
  *value = emulatedMultiprocessors();
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  *totalBytes = spw_host::deviceCapacity();
  *freeBytes = *totalBytes - spw_host::deviceBytesInUse;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  *pointer = nullptr;
  const size_t rounded = (bytes + spw_host::kDeviceAlignment - 1) / spw_host::kDeviceAlignment * spw_host::kDeviceAlignment;
  if (rounded < bytes || rounded > spw_host::deviceCapacity() - spw_host::deviceBytesInUse) {
    return reject(cudaErrorMemoryAllocation, "out of memory: %zu bytes asked, %zu of %zu free on the emulated device", bytes,
                  spw_host::deviceCapacity() - spw_host::deviceBytesInUse, spw_host::deviceCapacity());
  }
  // Exactly `bytes` (at least 1), so that under --sanitize an access past the end is reported; the
  // budget counts what CUDA would hand out (256-byte granules).
  void* p = nullptr;
  if (posix_memalign(&p, spw_host::kDeviceAlignment, bytes == 0 ? 1 : bytes) != 0) p = nullptr;
  if (p == nullptr) return reject(cudaErrorMemoryAllocation, "out of host memory for %zu emulated device bytes", bytes);
  std::memset(p, 0xFF, bytes);
  spw_host::deviceAllocations()[(uintptr_t)p] = bytes;
  spw_host::deviceGranules()[(uintptr_t)p] = rounded;
  spw_host::deviceBytesInUse += rounded;
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  auto& allocations = spw_host::deviceAllocations();
  auto it = allocations.find((uintptr_t)pointer);
  if (it == allocations.end()) return reject(cudaErrorInvalidDevicePointer, "cudaFree(%p): not the start of a cudaMalloc allocation", pointer);
  spw_host::deviceBytesInUse -= spw_host::deviceGranules()[(uintptr_t)pointer];
  spw_host::deviceGranules().erase((uintptr_t)pointer);
  allocations.erase(it);
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** pointer, size_t bytes, unsigned flags) {
  (void)flags;
  *pointer = nullptr;
  const size_t rounded = (bytes + 4095) / 4096 * 4096;
  void* p = std::aligned_alloc(4096, rounded == 0 ? 4096 : rounded);
  if (p == nullptr) return reject(cudaErrorMemoryAllocation, "out of host memory for %zu pinned bytes", bytes);
  std::memset(p, 0xFF, rounded == 0 ? 4096 : rounded);
  spw_host::hostAllocations().insert((uintptr_t)p);
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  if (spw_host::hostAllocations().erase((uintptr_t)pointer) == 0) return reject(cudaErrorInvalidValue, "cudaFreeHost(%p): not a cudaHostAlloc allocation", pointer);
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  static int next = 1;
  *stream = new CUstream_st{next++};
  spw_host::streams().insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr || spw_host::streams().erase(stream) == 0) return reject(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: unknown stream %p", (void*)stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!spw_host::validStream(stream)) return reject(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: unknown stream %p", (void*)stream);
  return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  if (!spw_host::validStream(stream)) return reject(cudaErrorInvalidResourceHandle, "cudaStreamQuery: unknown stream %p", (void*)stream);
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  (void)flags;
  if (!spw_host::validStream(stream)) return reject(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown stream %p", (void*)stream);
  if (!validEvent(event)) return reject(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown event %p", (void*)event);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  if ((flags & ~cudaEventDisableTiming) != 0) return reject(cudaErrorInvalidValue, "cudaEventCreateWithFlags: flags 0x%x are not emulated", flags);
  *event = new CUevent_st{(flags & cudaEventDisableTiming) == 0, false, 0.0};
  events().insert(*event);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr || events().erase(event) == 0) return reject(cudaErrorInvalidResourceHandle, "cudaEventDestroy: unknown event %p", (void*)event);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!validEvent(event)) return reject(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown event %p", (void*)event);
  if (!spw_host::validStream(stream)) return reject(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown stream %p", (void*)stream);
  event->recorded = true;
  event->ms = spw_host::nowMs();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!validEvent(event)) return reject(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: unknown event %p", (void*)event);
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (!validEvent(event)) return reject(cudaErrorInvalidResourceHandle, "cudaEventQuery: unknown event %p", (void*)event);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t end) {
  if (!validEvent(start) || !validEvent(end)) return reject(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: unknown event");
  if (!start->timing || !end->timing) return reject(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was created with cudaEventDisableTiming");
  if (!start->recorded || !end->recorded) return reject(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was never recorded");
  *milliseconds = (float)(end->ms - start->ms);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (!spw_host::validStream(stream)) return reject(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: unknown stream %p", (void*)stream);
  if (bytes == 0) return cudaSuccess;
  const bool dstDevice = spw_host::isDeviceRange(dst, bytes);
  const bool srcDevice = spw_host::isDeviceRange(src, bytes);
  const char* names[] = {"HostToHost", "HostToDevice", "DeviceToHost", "DeviceToDevice"};
  const bool wantDst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool wantSrc = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDeviceToDevice) return reject(cudaErrorInvalidMemcpyDirection, "cudaMemcpyAsync: kind %d", (int)kind);
  if (wantDst != dstDevice || (!wantDst && spw_host::touchesDevice(dst, bytes))) {
    return reject(cudaErrorInvalidValue, "cudaMemcpyAsync(%s): destination %p + %zu bytes is %s", names[kind], dst, bytes,
                  wantDst ? "not inside one device allocation" : "device memory");
  }
  if (wantSrc != srcDevice || (!wantSrc && spw_host::touchesDevice(src, bytes))) {
    return reject(cudaErrorInvalidValue, "cudaMemcpyAsync(%s): source %p + %zu bytes is %s", names[kind], src, bytes,
                  wantSrc ? "not inside one device allocation" : "device memory");
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  if (!spw_host::validStream(stream)) return reject(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: unknown stream %p", (void*)stream);
  if (bytes == 0) return cudaSuccess;
  if (!spw_host::isDeviceRange(dst, bytes)) return reject(cudaErrorInvalidValue, "cudaMemsetAsync: %p + %zu bytes is not inside one device allocation", dst, bytes);
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
