// Host emulation of the CUDA runtime: the subset of <cuda_runtime.h> that Spillway's kernels.cu and
// addon.cpp use, implemented on the CPU by host-runtime.cpp, so that the real kernels and the real
// Node-API binding run (slowly) on machines without a GPU, CI included.
//
// This directory comes first on the include path of `npm run build:cuda-host`
// (scripts/build-cuda-host.mjs), which also rewrites kernels.cu's launches `k<<<grid, block, smem,
// stream>>>(args)` into `::spw_host::launch(&k, grid, block, smem, stream)(args)` and its __shared__
// declarations into registered statics (see that script). Nothing here is used by the nvcc build.
//
// What the emulation checks, beyond computing the kernels' results (host-runtime.cpp):
// - every CUDA thread is a fiber; __syncthreads(), shuffles, votes and WMMA calls are barriers that
//   report divergence (threads at different barriers, lanes that exited before a warp collective, a
//   partial mask) and deadlock as a launch failure naming the kernels.cu line;
// - threads run between barriers in a seeded shuffled order (or forward / backward), so a missing
//   barrier shows up as a wrong result; shared and device memory start as 0xFF bytes (NaN floats);
// - every pointer argument of a launch must lie in device memory (cudaMalloc), and every async copy
//   must go between the kinds of memory it names, in bounds;
// - launch configurations are checked as CUDA does (threads per block, grid limits, shared memory).
// What it does not do: run streams concurrently (every call completes before it returns), detect
// out-of-bounds accesses inside a kernel, or reproduce the GPU's floating-point rounding (expf,
// tensor-core accumulation order and FMA contraction differ).
#pragma once

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define SPW_HOST_EMULATION 1
// No real CUDA runtime: the probe reports runtime and driver version 0.
#define CUDART_VERSION 0

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

// ---- vector types ---------------------------------------------------------------------------------

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct __attribute__((aligned(8))) float2 {
  float x, y;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};
struct __attribute__((aligned(16))) uint4 {
  unsigned x, y, z, w;
};

inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

// ---- runtime API types ----------------------------------------------------------------------------

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
  cudaErrorUnknown = 999,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};

enum cudaDeviceAttr {
  cudaDevAttrMultiProcessorCount = 16,
};

struct CUstream_st;
struct CUevent_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;

#define cudaHostAllocDefault 0x00u
#define cudaHostAllocPortable 0x01u
#define cudaEventDefault 0x00u
#define cudaEventDisableTiming 0x02u

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major;
  int minor;
  int multiProcessorCount;
  int l2CacheSize;
  int memoryBusWidth;
  size_t sharedMemPerBlockOptin;
  int pciDomainID;
  int pciBusID;
  int pciDeviceID;
  int asyncEngineCount;
};

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device);
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaHostAlloc(void** pointer, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* pointer);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr);

// ---- the emulator (host-runtime.cpp) --------------------------------------------------------------

namespace spw_host {

// The running thread's coordinates, set by the scheduler before it switches to a fiber.
extern uint3 currentThreadIdx;
extern uint3 currentBlockIdx;
extern dim3 currentBlockDim;
extern dim3 currentGridDim;

// Barriers: `line` is the kernels.cu line of the call, for the divergence reports.
void syncthreads(int line);
// Each lane offers `bits`; returns lane (own lane ^ laneMask)'s offer.
uint64_t shuffleXor(unsigned mask, uint64_t bits, int laneMask, int line);
// Each lane offers `predicate`; returns whether any lane's is non-zero.
int anyLane(unsigned mask, int predicate, int line);
// The barrier a WMMA call (`what`, named in divergence reports) starts with: every lane of the warp
// must reach it before any goes on.
void warpCollective(const char* what, int line);
// The calling thread's lane (0..31).
unsigned laneId();
// Stops the launch with a failure (cudaErrorLaunchFailure and this message); never returns.
[[noreturn]] void fail(const char* format, ...);

// The launch's dynamic shared memory.
void* dynamicSharedMemory();
// A static __shared__ array of the running block: poisoned (0xFF) when the block first reaches it.
void sharedDeclared(void* storage, size_t bytes);

// Whether [pointer, pointer + bytes) lies in one cudaMalloc allocation.
bool isDeviceRange(const void* pointer, size_t bytes);
// Records a launch error (cudaGetLastError returns it) with an explanation cudaGetErrorString gives.
void setLaunchError(cudaError_t error, const char* format, ...);

// Runs the grid: body() once per thread, every thread a fiber. Returns false (with the launch error
// set) if the configuration is invalid or a thread failed.
bool runGrid(const char* kernel, dim3 grid, dim3 block, size_t sharedBytes, cudaStream_t stream, void (*body)(void*), void* context);

template <typename T>
inline bool checkPointerArgument(const char* kernel, size_t index, const T& value) {
  if constexpr (std::is_pointer_v<T>) {
    if (value != nullptr && !isDeviceRange(value, 1)) {
      setLaunchError(cudaErrorInvalidDevicePointer, "%s: argument %zu (%p) is not device memory (cudaMalloc)", kernel, index, (const void*)value);
      return false;
    }
  }
  return true;
}

template <typename... P>
struct Launch {
  void (*kernel)(P...);
  const char* name;
  dim3 grid, block;
  size_t sharedBytes;
  cudaStream_t stream;

  template <typename... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "a kernel launch takes one value per parameter");
    std::tuple<std::decay_t<P>...> parameters(std::forward<A>(args)...);
    bool ok = true;
    size_t index = 0;
    std::apply([&](const auto&... p) { ((ok = ok && checkPointerArgument(name, index++, p)), ...); }, parameters);
    if (!ok) return;
    struct Context {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...>* parameters;
    } context{kernel, &parameters};
    runGrid(name, grid, block, sharedBytes, stream, [](void* c) {
      auto* ctx = static_cast<Context*>(c);
      std::apply(ctx->kernel, *ctx->parameters);
    }, &context);
  }
};

template <typename... P>
Launch<P...> launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t sharedBytes = 0, cudaStream_t stream = nullptr) {
  return Launch<P...>{kernel, name, grid, block, sharedBytes, stream};
}

template <typename T>
inline uint64_t toBits(T value) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffles move values of up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

template <typename T>
inline T fromBits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

}  // namespace spw_host

// ---- device built-ins -----------------------------------------------------------------------------

#define threadIdx (::spw_host::currentThreadIdx)
#define blockIdx (::spw_host::currentBlockIdx)
#define blockDim (::spw_host::currentBlockDim)
#define gridDim (::spw_host::currentGridDim)
#define warpSize 32

#define __syncthreads() ::spw_host::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, value, laneMask) \
  (::spw_host::fromBits<std::decay_t<decltype(value)>>(::spw_host::shuffleXor((mask), ::spw_host::toBits(value), (laneMask), __LINE__)))
#define __any_sync(mask, predicate) (::spw_host::anyLane((mask), (predicate) ? 1 : 0, __LINE__))

template <typename T>
inline T __ldg(const T* pointer) {
  return *pointer;
}

inline unsigned __float_as_uint(float f) { return spw_host::fromBits<unsigned>(spw_host::toBits(f)); }
inline float __uint_as_float(unsigned u) { return spw_host::fromBits<float>(spw_host::toBits(u)); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
// The build uses -ffp-contract=off, so these round once each, as the _rn intrinsics do.
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
// double -> float rounded towards +infinity.
inline float __double2float_ru(double d) {
  float f = (float)d;
  if (!std::isnan(d) && (double)f < d) f = std::nextafter(f, INFINITY);
  return f;
}

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
