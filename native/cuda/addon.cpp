// Spillway's CUDA addon: the Node-API binding of the CUDA runtime calls and kernel launchers that
// the CUDA backend uses. The contract is runtime/cuda/native-api.ts (interface CudaNative); the
// launchers are native/cuda/kernels.h. Built by scripts/build-cuda.mjs (`npm run build:cuda`).
//
// Plain Node-API (C interface, version 8), no node-addon-api:
// - every function checks its argument count and types BEFORE any CUDA call and throws a TypeError
//   naming the function and the argument, so malformed calls are safe without a driver;
// - device pointers, streams and events travel as JS numbers: non-negative integers below 2^53
//   (Number.isSafeInteger); 0 is null and, for streams, the legacy default stream. An address the
//   CUDA runtime hands back that a number cannot hold is released and reported as an error;
// - a failing CUDA call throws an Error whose message names the call, its arguments where useful,
//   and the error string and name: "cudaMalloc(1073741824 bytes): out of memory
//   (cudaErrorMemoryAllocation)"; the error's `code` is the error name and `cudaError` its number;
// - a failing launcher throws the same way, naming the kernel and its shape:
//   "linear(m=4, k=768, n=3072): invalid configuration argument (cudaErrorInvalidConfiguration)".
#define NAPI_VERSION 8
#include <node_api.h>

#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "kernels.h"

// The -gencode targets of this build, set by scripts/build-cuda.mjs ("sm_75 sm_80 ... compute_90").
#ifndef SPW_CUDA_ARCHS
#define SPW_CUDA_ARCHS "unknown"
#endif

namespace {

// Number.MAX_SAFE_INTEGER: the largest integer a JS number holds exactly, together with its neighbours.
constexpr double kMaxSafeInteger = 9007199254740991.0;
constexpr size_t kMaxArgs = 12;

// ---------------------------------------------------------------------------------------------
// Errors

void formatV(char* buffer, size_t size, const char* format, va_list args) {
  vsnprintf(buffer, size, format, args);
}

// Throws a TypeError (code ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE / ERR_MISSING_ARGS ...).
// Always returns nullptr so callbacks can `return throwTypeError(...)`.
napi_value throwTypeError(napi_env env, const char* code, const char* format, ...) {
  char message[512];
  va_list args;
  va_start(args, format);
  formatV(message, sizeof message, format, args);
  va_end(args);
  napi_throw_type_error(env, code, message);
  return nullptr;
}

// Throws a plain Error with `code` and an optional numeric `cudaError` property.
napi_value throwError(napi_env env, const char* code, int cudaErrorNumber, const char* message) {
  napi_value codeValue = nullptr, messageValue = nullptr, error = nullptr;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &messageValue) != napi_ok) return nullptr;
  if (code != nullptr) napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &codeValue);
  if (napi_create_error(env, codeValue, messageValue, &error) != napi_ok) {
    napi_throw_error(env, code, message);
    return nullptr;
  }
  if (cudaErrorNumber >= 0) {
    napi_value number;
    if (napi_create_int32(env, cudaErrorNumber, &number) == napi_ok) napi_set_named_property(env, error, "cudaError", number);
  }
  napi_throw(env, error);
  return nullptr;
}

// Throws "<what>: <error string> (<error name>)" for a failed CUDA call or launch. The runtime's
// last-error slot is cleared first, so that a later launcher's cudaGetLastError() does not report
// this (already thrown) error as its own; a sticky error stays, as CUDA keeps it.
napi_value throwCuda(napi_env env, cudaError_t status, const char* format, ...) {
  (void)cudaGetLastError();
  char what[384];
  va_list args;
  va_start(args, format);
  formatV(what, sizeof what, format, args);
  va_end(args);
  const char* name = cudaGetErrorName(status);
  const char* text = cudaGetErrorString(status);
  char message[768];
  snprintf(message, sizeof message, "%s: %s (%s)", what, text != nullptr ? text : "unknown error",
           name != nullptr ? name : "cudaErrorUnknown");
  return throwError(env, name, static_cast<int>(status), message);
}

unsigned long long addressOf(const void* pointer) {
  return static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(pointer));
}

// ---------------------------------------------------------------------------------------------
// Arguments

struct Call {
  napi_env env;
  const char* name;  // the JS function name, e.g. "malloc"
  size_t argc;
  napi_value argv[kMaxArgs];
};

const char* typeName(napi_valuetype type) {
  switch (type) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

bool numberArg(Call& c, size_t index, const char* arg, double* out) {
  napi_valuetype type;
  if (napi_typeof(c.env, c.argv[index], &type) != napi_ok) {
    throwTypeError(c.env, "ERR_INVALID_ARG_TYPE", "%s: %s could not be read", c.name, arg);
    return false;
  }
  if (type != napi_number) {
    throwTypeError(c.env, "ERR_INVALID_ARG_TYPE", "%s: %s must be a number, got %s", c.name, arg, typeName(type));
    return false;
  }
  napi_get_value_double(c.env, c.argv[index], out);
  return true;
}

// A non-negative integer a JS number holds exactly (<= 2^53 - 1).
bool safeIntegerArg(Call& c, size_t index, const char* arg, const char* what, double* out) {
  double value;
  if (!numberArg(c, index, arg, &value)) return false;
  if (!(value >= 0) || value > kMaxSafeInteger || std::floor(value) != value) {
    throwTypeError(c.env, "ERR_INVALID_ARG_VALUE", "%s: %s must be %s: a non-negative integer below 2^53, got %.17g",
                   c.name, arg, what, value);
    return false;
  }
  *out = value;
  return true;
}

bool pointerArg(Call& c, size_t index, const char* arg, void** out) {
  double value;
  if (!safeIntegerArg(c, index, arg, "a device address", &value)) return false;
  *out = reinterpret_cast<void*>(static_cast<uintptr_t>(value));
  return true;
}

bool streamArg(Call& c, size_t index, cudaStream_t* out) {
  double value;
  if (!safeIntegerArg(c, index, "stream", "a stream handle (0 for the default stream)", &value)) return false;
  *out = reinterpret_cast<cudaStream_t>(static_cast<uintptr_t>(value));
  return true;
}

bool eventArg(Call& c, size_t index, const char* arg, cudaEvent_t* out) {
  double value;
  if (!safeIntegerArg(c, index, arg, "an event handle", &value)) return false;
  if (value == 0) {
    throwTypeError(c.env, "ERR_INVALID_ARG_VALUE", "%s: %s must be an event from eventCreate(), got 0", c.name, arg);
    return false;
  }
  *out = reinterpret_cast<cudaEvent_t>(static_cast<uintptr_t>(value));
  return true;
}

bool sizeArg(Call& c, size_t index, const char* arg, size_t* out) {
  double value;
  if (!safeIntegerArg(c, index, arg, "a count", &value)) return false;
  *out = static_cast<size_t>(value);
  return true;
}

// An int32 count or index: 0 .. 2^31 - 1.
bool intArg(Call& c, size_t index, const char* arg, int* out) {
  double value;
  if (!numberArg(c, index, arg, &value)) return false;
  if (!(value >= 0) || value > static_cast<double>(INT_MAX) || std::floor(value) != value) {
    throwTypeError(c.env, "ERR_INVALID_ARG_VALUE", "%s: %s must be an integer from 0 to 2147483647, got %.17g", c.name, arg, value);
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

bool byteArg(Call& c, size_t index, const char* arg, int* out) {
  double value;
  if (!numberArg(c, index, arg, &value)) return false;
  if (!(value >= 0) || value > 255 || std::floor(value) != value) {
    throwTypeError(c.env, "ERR_INVALID_ARG_VALUE", "%s: %s must be an integer from 0 to 255, got %.17g", c.name, arg, value);
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

bool finiteArg(Call& c, size_t index, const char* arg, double* out) {
  if (!numberArg(c, index, arg, out)) return false;
  if (!std::isfinite(*out)) {
    throwTypeError(c.env, "ERR_INVALID_ARG_VALUE", "%s: %s must be a finite number, got %.17g", c.name, arg, *out);
    return false;
  }
  return true;
}

bool boolArg(Call& c, size_t index, const char* arg, bool* out) {
  napi_valuetype type;
  napi_typeof(c.env, c.argv[index], &type);
  if (type != napi_boolean) {
    throwTypeError(c.env, "ERR_INVALID_ARG_TYPE", "%s: %s must be a boolean, got %s", c.name, arg, typeName(type));
    return false;
  }
  napi_get_value_bool(c.env, c.argv[index], out);
  return true;
}

size_t typedArrayElementBytes(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array: return 8;
  }
  return 0;
}

// Any TypedArray, DataView or ArrayBuffer: its bytes (from its byte offset, for its byte length).
bool hostBytesArg(Call& c, size_t index, const char* arg, void** data, size_t* bytes) {
  napi_env env = c.env;
  napi_value value = c.argv[index];
  bool is = false;
  *data = nullptr;
  *bytes = 0;
  if (napi_is_typedarray(env, value, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length = 0;
    if (napi_get_typedarray_info(env, value, &type, &length, data, nullptr, nullptr) != napi_ok) {
      throwTypeError(env, "ERR_INVALID_ARG_TYPE", "%s: %s could not be read as a TypedArray", c.name, arg);
      return false;
    }
    size_t element = typedArrayElementBytes(type);
    if (element == 0) {
      throwTypeError(env, "ERR_INVALID_ARG_TYPE", "%s: %s is a TypedArray of an unsupported element type", c.name, arg);
      return false;
    }
    *bytes = length * element;
    return true;
  }
  if (napi_is_dataview(env, value, &is) == napi_ok && is) {
    if (napi_get_dataview_info(env, value, bytes, data, nullptr, nullptr) != napi_ok) {
      throwTypeError(env, "ERR_INVALID_ARG_TYPE", "%s: %s could not be read as a DataView", c.name, arg);
      return false;
    }
    return true;
  }
  if (napi_is_arraybuffer(env, value, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, value, data, bytes) != napi_ok) {
      throwTypeError(env, "ERR_INVALID_ARG_TYPE", "%s: %s could not be read as an ArrayBuffer", c.name, arg);
      return false;
    }
    return true;
  }
  napi_valuetype type;
  napi_typeof(env, value, &type);
  throwTypeError(env, "ERR_INVALID_ARG_TYPE", "%s: %s must be a TypedArray, DataView or ArrayBuffer, got %s", c.name, arg,
                 typeName(type));
  return false;
}

// ---------------------------------------------------------------------------------------------
// Results

napi_value numberValue(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

napi_value boolValue(napi_env env, bool value) {
  napi_value result;
  napi_get_boolean(env, value, &result);
  return result;
}

void setNumber(napi_env env, napi_value object, const char* key, double value) {
  napi_set_named_property(env, object, key, numberValue(env, value));
}

void setString(napi_env env, napi_value object, const char* key, const char* value) {
  napi_value string;
  if (napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &string) == napi_ok) napi_set_named_property(env, object, key, string);
}

bool roundTrips(const void* pointer) {
  return static_cast<double>(reinterpret_cast<uintptr_t>(pointer)) <= kMaxSafeInteger;
}

napi_value handleTooLarge(napi_env env, const char* call, const void* pointer) {
  char message[256];
  snprintf(message, sizeof message, "%s returned 0x%llx, an address at or beyond 2^53 that a JS number cannot hold (released)",
           call, addressOf(pointer));
  return throwError(env, "ERR_SPILLWAY_ADDRESS_RANGE", -1, message);
}

// ---------------------------------------------------------------------------------------------
// Devices

napi_value Probe(Call& c) {
  napi_env env = c.env;
  int runtimeVersion = 0;
  if (cudaRuntimeGetVersion(&runtimeVersion) != cudaSuccess || runtimeVersion == 0) runtimeVersion = CUDART_VERSION;
  int driverVersion = 0;
  if (cudaDriverGetVersion(&driverVersion) != cudaSuccess) driverVersion = 0;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  const bool ok = status == cudaSuccess && count > 0;
  napi_value result;
  if (napi_create_object(env, &result) != napi_ok) return nullptr;
  napi_set_named_property(env, result, "ok", boolValue(env, ok));
  setNumber(env, result, "deviceCount", status == cudaSuccess ? count : 0);
  setNumber(env, result, "runtimeVersion", runtimeVersion);
  setNumber(env, result, "driverVersion", driverVersion);
  if (!ok) {
    char message[512];
    if (status != cudaSuccess) {
      snprintf(message, sizeof message, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(status), cudaGetErrorName(status));
    } else {
      snprintf(message, sizeof message, "cudaGetDeviceCount: no CUDA-capable device is detected (0 devices)");
    }
    setString(env, result, "error", message);
  }
  return result;
}

napi_value DeviceProperties(Call& c) {
  int device;
  if (!intArg(c, 0, "device", &device)) return nullptr;
  cudaDeviceProp p;
  memset(&p, 0, sizeof p);
  cudaError_t status = cudaGetDeviceProperties(&p, device);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaGetDeviceProperties(device %d)", device);
  napi_env env = c.env;
  napi_value result;
  napi_create_object(env, &result);
  napi_value name;
  napi_create_string_utf8(env, p.name, strnlen(p.name, sizeof p.name), &name);
  napi_set_named_property(env, result, "name", name);
  setNumber(env, result, "totalBytes", static_cast<double>(p.totalGlobalMem));
  setNumber(env, result, "major", p.major);
  setNumber(env, result, "minor", p.minor);
  setNumber(env, result, "multiprocessors", p.multiProcessorCount);
  setNumber(env, result, "l2CacheBytes", p.l2CacheSize);
  setNumber(env, result, "memoryBusWidthBits", p.memoryBusWidth);
  setNumber(env, result, "sharedMemoryPerBlockOptinBytes", static_cast<double>(p.sharedMemPerBlockOptin));
  setNumber(env, result, "pciDomain", p.pciDomainID);
  setNumber(env, result, "pciBus", p.pciBusID);
  setNumber(env, result, "pciDevice", p.pciDeviceID);
  setNumber(env, result, "asyncEngines", p.asyncEngineCount);
  return result;
}

napi_value SetDevice(Call& c) {
  int device;
  if (!intArg(c, 0, "device", &device)) return nullptr;
  cudaError_t status = cudaSetDevice(device);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaSetDevice(device %d)", device);
  return nullptr;
}

napi_value MemGetInfo(Call& c) {
  size_t freeBytes = 0, totalBytes = 0;
  cudaError_t status = cudaMemGetInfo(&freeBytes, &totalBytes);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaMemGetInfo");
  napi_value result;
  napi_create_object(c.env, &result);
  setNumber(c.env, result, "freeBytes", static_cast<double>(freeBytes));
  setNumber(c.env, result, "totalBytes", static_cast<double>(totalBytes));
  return result;
}

napi_value DeviceSynchronize(Call& c) {
  cudaError_t status = cudaDeviceSynchronize();
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaDeviceSynchronize");
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Memory

napi_value Malloc(Call& c) {
  size_t bytes;
  if (!sizeArg(c, 0, "bytes", &bytes)) return nullptr;
  void* pointer = nullptr;
  cudaError_t status = cudaMalloc(&pointer, bytes);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaMalloc(%zu bytes)", bytes);
  if (!roundTrips(pointer)) {
    cudaFree(pointer);
    char call[64];
    snprintf(call, sizeof call, "cudaMalloc(%zu bytes)", bytes);
    return handleTooLarge(c.env, call, pointer);
  }
  return numberValue(c.env, static_cast<double>(reinterpret_cast<uintptr_t>(pointer)));
}

napi_value Free(Call& c) {
  void* pointer;
  if (!pointerArg(c, 0, "pointer", &pointer)) return nullptr;
  cudaError_t status = cudaFree(pointer);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaFree(0x%llx)", addressOf(pointer));
  return nullptr;
}

// Pinned host blocks handed out as external ArrayBuffers. The registry maps a block's address to
// its record while it is live; hostFree() and the ArrayBuffer's finalizer each take it out of the
// registry under the lock, and only the one that does frees the memory, so nothing is freed twice.
// The record itself is owned by the finalizer (which Node calls exactly once, possibly during or
// long after a detach).
struct HostBlock {
  void* pointer;
  size_t bytes;
};

std::mutex hostMutex;
std::unordered_map<void*, HostBlock*>* hostBlocks = new std::unordered_map<void*, HostBlock*>();  // never destroyed

// Takes the block out of the registry; true when this caller now owns freeing its memory.
bool claimHostBlock(HostBlock* block) {
  std::lock_guard<std::mutex> lock(hostMutex);
  auto it = hostBlocks->find(block->pointer);
  if (it == hostBlocks->end() || it->second != block) return false;
  hostBlocks->erase(it);
  return true;
}

void finalizeHostBlock(napi_env, void*, void* hint) {
  HostBlock* block = static_cast<HostBlock*>(hint);
  if (claimHostBlock(block)) {
    cudaFreeHost(block->pointer);
    (void)cudaGetLastError();
  }
  delete block;
}

napi_value HostAlloc(Call& c) {
  size_t bytes;
  if (!sizeArg(c, 0, "bytes", &bytes)) return nullptr;
  napi_env env = c.env;
  if (bytes == 0) {
    // Nothing to pin: an ordinary empty ArrayBuffer (hostFree accepts it and detaches it).
    napi_value empty;
    void* data;
    napi_create_arraybuffer(env, 0, &data, &empty);
    return empty;
  }
  void* pointer = nullptr;
  cudaError_t status = cudaHostAlloc(&pointer, bytes, cudaHostAllocPortable);
  if (status != cudaSuccess) return throwCuda(env, status, "cudaHostAlloc(%zu bytes, portable)", bytes);
  HostBlock* block = new HostBlock{pointer, bytes};
  {
    std::lock_guard<std::mutex> lock(hostMutex);
    (*hostBlocks)[pointer] = block;
  }
  napi_value buffer;
  napi_status made = napi_create_external_arraybuffer(env, pointer, bytes, finalizeHostBlock, block, &buffer);
  if (made != napi_ok) {
    claimHostBlock(block);
    cudaFreeHost(pointer);
    delete block;
    const napi_extended_error_info* info = nullptr;
    napi_get_last_error_info(env, &info);
    char message[256];
    snprintf(message, sizeof message, "hostAlloc(%zu bytes): napi_create_external_arraybuffer failed (%s)", bytes,
             info != nullptr && info->error_message != nullptr ? info->error_message : "unknown");
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) return nullptr;
    return throwError(env, "ERR_SPILLWAY_EXTERNAL_BUFFER", -1, message);
  }
  return buffer;
}

napi_value HostFree(Call& c) {
  napi_env env = c.env;
  napi_value buffer = c.argv[0];
  bool isArrayBuffer = false;
  napi_is_arraybuffer(env, buffer, &isArrayBuffer);
  if (!isArrayBuffer) {
    napi_valuetype type;
    napi_typeof(env, buffer, &type);
    return throwTypeError(env, "ERR_INVALID_ARG_TYPE", "hostFree: buffer must be an ArrayBuffer from hostAlloc(), got %s%s",
                          typeName(type), type == napi_object ? " (not an ArrayBuffer; pass the buffer, not a view of it)" : "");
  }
  bool detached = false;
  napi_is_detached_arraybuffer(env, buffer, &detached);
  if (detached) {
    return throwTypeError(env, "ERR_INVALID_ARG_VALUE", "hostFree: the ArrayBuffer is detached (already freed by hostFree?)");
  }
  void* data = nullptr;
  size_t bytes = 0;
  napi_get_arraybuffer_info(env, buffer, &data, &bytes);
  if (bytes == 0) {
    // hostAlloc(0): nothing pinned; detach it as for any other freed buffer.
    napi_detach_arraybuffer(env, buffer);
    return nullptr;
  }
  HostBlock* block = nullptr;
  {
    std::lock_guard<std::mutex> lock(hostMutex);
    auto it = hostBlocks->find(data);
    if (it != hostBlocks->end() && it->second->bytes == bytes) {
      block = it->second;
      hostBlocks->erase(it);
    }
  }
  if (block == nullptr) {
    return throwTypeError(env, "ERR_INVALID_ARG_VALUE",
                          "hostFree: the ArrayBuffer (%zu bytes) is not a live buffer from hostAlloc()", bytes);
  }
  // The block is ours to free now; the finalizer (which owns the record) will find it gone from the
  // registry. Detach before freeing so that no JS code can touch the memory after it is released.
  if (napi_detach_arraybuffer(env, buffer) != napi_ok) {
    // Still attached, so still alive (the finalizer cannot have run): hand it back to the registry.
    {
      std::lock_guard<std::mutex> lock(hostMutex);
      (*hostBlocks)[data] = block;
    }
    return throwError(env, "ERR_SPILLWAY_DETACH", -1, "hostFree: the ArrayBuffer could not be detached, so it was not freed");
  }
  cudaError_t status = cudaFreeHost(data);
  if (status != cudaSuccess) return throwCuda(env, status, "cudaFreeHost(%zu bytes)", bytes);
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Streams and events

napi_value StreamCreate(Call& c) {
  cudaStream_t stream = nullptr;
  cudaError_t status = cudaStreamCreate(&stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaStreamCreate");
  if (!roundTrips(stream)) {
    cudaStreamDestroy(stream);
    return handleTooLarge(c.env, "cudaStreamCreate", stream);
  }
  return numberValue(c.env, static_cast<double>(reinterpret_cast<uintptr_t>(stream)));
}

napi_value StreamDestroy(Call& c) {
  cudaStream_t stream;
  if (!streamArg(c, 0, &stream)) return nullptr;
  cudaError_t status = cudaStreamDestroy(stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaStreamDestroy(stream 0x%llx)", addressOf(stream));
  return nullptr;
}

napi_value StreamSynchronize(Call& c) {
  cudaStream_t stream;
  if (!streamArg(c, 0, &stream)) return nullptr;
  cudaError_t status = cudaStreamSynchronize(stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaStreamSynchronize(stream 0x%llx)", addressOf(stream));
  return nullptr;
}

napi_value StreamQuery(Call& c) {
  cudaStream_t stream;
  if (!streamArg(c, 0, &stream)) return nullptr;
  cudaError_t status = cudaStreamQuery(stream);
  if (status == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return boolValue(c.env, false);
  }
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaStreamQuery(stream 0x%llx)", addressOf(stream));
  return boolValue(c.env, true);
}

napi_value EventCreate(Call& c) {
  bool timing;
  if (!boolArg(c, 0, "timing", &timing)) return nullptr;
  cudaEvent_t event = nullptr;
  cudaError_t status = cudaEventCreateWithFlags(&event, timing ? cudaEventDefault : cudaEventDisableTiming);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaEventCreateWithFlags(%s)", timing ? "timing" : "cudaEventDisableTiming");
  if (!roundTrips(event)) {
    cudaEventDestroy(event);
    return handleTooLarge(c.env, "cudaEventCreateWithFlags", event);
  }
  return numberValue(c.env, static_cast<double>(reinterpret_cast<uintptr_t>(event)));
}

napi_value EventDestroy(Call& c) {
  cudaEvent_t event;
  if (!eventArg(c, 0, "event", &event)) return nullptr;
  cudaError_t status = cudaEventDestroy(event);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaEventDestroy(event 0x%llx)", addressOf(event));
  return nullptr;
}

napi_value EventRecord(Call& c) {
  cudaEvent_t event;
  cudaStream_t stream;
  if (!eventArg(c, 0, "event", &event) || !streamArg(c, 1, &stream)) return nullptr;
  cudaError_t status = cudaEventRecord(event, stream);
  if (status != cudaSuccess) {
    return throwCuda(c.env, status, "cudaEventRecord(event 0x%llx, stream 0x%llx)", addressOf(event), addressOf(stream));
  }
  return nullptr;
}

napi_value EventSynchronize(Call& c) {
  cudaEvent_t event;
  if (!eventArg(c, 0, "event", &event)) return nullptr;
  cudaError_t status = cudaEventSynchronize(event);
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaEventSynchronize(event 0x%llx)", addressOf(event));
  return nullptr;
}

napi_value EventQuery(Call& c) {
  cudaEvent_t event;
  if (!eventArg(c, 0, "event", &event)) return nullptr;
  cudaError_t status = cudaEventQuery(event);
  if (status == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return boolValue(c.env, false);
  }
  if (status != cudaSuccess) return throwCuda(c.env, status, "cudaEventQuery(event 0x%llx)", addressOf(event));
  return boolValue(c.env, true);
}

napi_value EventElapsedMs(Call& c) {
  cudaEvent_t start, end;
  if (!eventArg(c, 0, "start", &start) || !eventArg(c, 1, "end", &end)) return nullptr;
  float ms = 0;
  cudaError_t status = cudaEventElapsedTime(&ms, start, end);
  if (status != cudaSuccess) {
    return throwCuda(c.env, status, "cudaEventElapsedTime(start 0x%llx, end 0x%llx)", addressOf(start), addressOf(end));
  }
  return numberValue(c.env, ms);
}

napi_value StreamWaitEvent(Call& c) {
  cudaStream_t stream;
  cudaEvent_t event;
  if (!streamArg(c, 0, &stream) || !eventArg(c, 1, "event", &event)) return nullptr;
  cudaError_t status = cudaStreamWaitEvent(stream, event, 0);
  if (status != cudaSuccess) {
    return throwCuda(c.env, status, "cudaStreamWaitEvent(stream 0x%llx, event 0x%llx)", addressOf(stream), addressOf(event));
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Copies

napi_value MemcpyHtoD(Call& c) {
  void* dst;
  void* src;
  size_t bytes;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "dst", &dst) || !hostBytesArg(c, 1, "src", &src, &bytes) || !streamArg(c, 2, &stream)) return nullptr;
  if (bytes == 0) return nullptr;
  cudaError_t status = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream);
  if (status != cudaSuccess) {
    return throwCuda(c.env, status, "cudaMemcpyAsync(HtoD, dst 0x%llx, %zu bytes, stream 0x%llx)", addressOf(dst), bytes, addressOf(stream));
  }
  return nullptr;
}

napi_value MemcpyDtoH(Call& c) {
  void* dst;
  void* src;
  size_t bytes;
  cudaStream_t stream;
  if (!hostBytesArg(c, 0, "dst", &dst, &bytes) || !pointerArg(c, 1, "src", &src) || !streamArg(c, 2, &stream)) return nullptr;
  if (bytes == 0) return nullptr;
  cudaError_t status = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream);
  if (status != cudaSuccess) {
    return throwCuda(c.env, status, "cudaMemcpyAsync(DtoH, src 0x%llx, %zu bytes, stream 0x%llx)", addressOf(src), bytes, addressOf(stream));
  }
  return nullptr;
}

napi_value MemcpyDtoD(Call& c) {
  void* dst;
  void* src;
  size_t bytes;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "dst", &dst) || !pointerArg(c, 1, "src", &src) || !sizeArg(c, 2, "bytes", &bytes) || !streamArg(c, 3, &stream)) {
    return nullptr;
  }
  if (bytes == 0) return nullptr;
  cudaError_t status = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
  if (status != cudaSuccess) {
    return throwCuda(c.env, status, "cudaMemcpyAsync(DtoD, dst 0x%llx, src 0x%llx, %zu bytes, stream 0x%llx)", addressOf(dst),
                     addressOf(src), bytes, addressOf(stream));
  }
  return nullptr;
}

napi_value Memset(Call& c) {
  void* dst;
  int byte;
  size_t bytes;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "dst", &dst) || !byteArg(c, 1, "byte", &byte) || !sizeArg(c, 2, "bytes", &bytes) || !streamArg(c, 3, &stream)) {
    return nullptr;
  }
  if (bytes == 0) return nullptr;
  cudaError_t status = cudaMemsetAsync(dst, byte, bytes, stream);
  if (status != cudaSuccess) {
    return throwCuda(c.env, status, "cudaMemsetAsync(dst 0x%llx, byte %d, %zu bytes, stream 0x%llx)", addressOf(dst), byte, bytes,
                     addressOf(stream));
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Kernels (native/cuda/kernels.h)

template <typename T>
T* as(void* pointer) {
  return static_cast<T*>(pointer);
}

napi_value Linear(Call& c) {
  void *x, *w, *bias, *out;
  int m, k, n;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "w", &w) || !pointerArg(c, 2, "bias", &bias) || !pointerArg(c, 3, "out", &out) ||
      !intArg(c, 4, "m", &m) || !intArg(c, 5, "k", &k) || !intArg(c, 6, "n", &n) || !streamArg(c, 7, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_linear(as<const float>(x), as<const uint16_t>(w), as<const float>(bias), as<float>(out), m, k, n, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "linear(m=%d, k=%d, n=%d)", m, k, n);
  return nullptr;
}

napi_value LayerNorm(Call& c) {
  void *x, *gamma, *beta, *out;
  int rows, cols;
  double eps;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "gamma", &gamma) || !pointerArg(c, 2, "beta", &beta) ||
      !pointerArg(c, 3, "out", &out) || !intArg(c, 4, "rows", &rows) || !intArg(c, 5, "cols", &cols) || !finiteArg(c, 6, "eps", &eps) ||
      !streamArg(c, 7, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_layer_norm(as<const float>(x), as<const float>(gamma), as<const float>(beta), as<float>(out), rows, cols,
                                      static_cast<float>(eps), stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "layerNorm(rows=%d, cols=%d)", rows, cols);
  return nullptr;
}

napi_value SoftmaxRows(Call& c) {
  void* x;
  int rows, cols;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !intArg(c, 1, "rows", &rows) || !intArg(c, 2, "cols", &cols) || !streamArg(c, 3, &stream)) return nullptr;
  cudaError_t status = spw_softmax_rows(as<float>(x), rows, cols, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "softmaxRows(rows=%d, cols=%d)", rows, cols);
  return nullptr;
}

napi_value AttentionScratchFloats(Call& c) {
  int t, past, heads;
  if (!intArg(c, 0, "t", &t) || !intArg(c, 1, "past", &past) || !intArg(c, 2, "heads", &heads)) return nullptr;
  return numberValue(c.env, static_cast<double>(spw_attention_scratch_floats(t, past, heads)));
}

napi_value Attention(Call& c) {
  void *q, *k, *v, *out, *scratch;
  int t, past, heads, headDim;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "q", &q) || !pointerArg(c, 1, "k", &k) || !pointerArg(c, 2, "v", &v) || !pointerArg(c, 3, "out", &out) ||
      !pointerArg(c, 4, "scratch", &scratch) || !intArg(c, 5, "t", &t) || !intArg(c, 6, "past", &past) || !intArg(c, 7, "heads", &heads) ||
      !intArg(c, 8, "headDim", &headDim) || !streamArg(c, 9, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_attention(as<const float>(q), as<const float>(k), as<const float>(v), as<float>(out), as<float>(scratch), t,
                                     past, heads, headDim, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "attention(t=%d, past=%d, heads=%d, headDim=%d)", t, past, heads, headDim);
  return nullptr;
}

napi_value Relu(Call& c) {
  void* x;
  size_t n;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !sizeArg(c, 1, "n", &n) || !streamArg(c, 2, &stream)) return nullptr;
  cudaError_t status = spw_relu(as<float>(x), n, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "relu(n=%zu)", n);
  return nullptr;
}

napi_value Add(Call& c) {
  void *x, *y;
  size_t n;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "y", &y) || !sizeArg(c, 2, "n", &n) || !streamArg(c, 3, &stream)) return nullptr;
  cudaError_t status = spw_add(as<float>(x), as<const float>(y), n, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "add(n=%zu)", n);
  return nullptr;
}

napi_value Embedding(Call& c) {
  void *table, *ids, *out;
  int count, dim, rows;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "table", &table) || !pointerArg(c, 1, "ids", &ids) || !intArg(c, 2, "count", &count) || !intArg(c, 3, "dim", &dim) ||
      !intArg(c, 4, "rows", &rows) || !pointerArg(c, 5, "out", &out) || !streamArg(c, 6, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_embedding(as<const uint16_t>(table), as<const int32_t>(ids), count, dim, rows, as<float>(out), stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "embedding(count=%d, dim=%d, rows=%d)", count, dim, rows);
  return nullptr;
}

napi_value F32ToF16(Call& c) {
  void *x, *out;
  size_t n;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "out", &out) || !sizeArg(c, 2, "n", &n) || !streamArg(c, 3, &stream)) return nullptr;
  cudaError_t status = spw_f32_to_f16(as<const float>(x), as<uint16_t>(out), n, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "f32ToF16(n=%zu)", n);
  return nullptr;
}

napi_value F16ToF32(Call& c) {
  void *x, *out;
  size_t n;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "out", &out) || !sizeArg(c, 2, "n", &n) || !streamArg(c, 3, &stream)) return nullptr;
  cudaError_t status = spw_f16_to_f32(as<const uint16_t>(x), as<float>(out), n, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "f16ToF32(n=%zu)", n);
  return nullptr;
}

napi_value Q4Bytes(Call& c) {
  size_t rowValues;
  if (!sizeArg(c, 0, "rowValues", &rowValues)) return nullptr;
  return numberValue(c.env, static_cast<double>(spw_q4_bytes(rowValues)));
}

// The 4-bit launchers' arguments: (input, rows, rowValues, output, stream), as kernels.h orders them.
// Launches `launch(input, output, rows, rowValues, stream)` and throws, named `name`, if it fails.
template <typename Launch>
napi_value q4Call(Call& c, const char* name, const char* inName, const char* outName, Launch launch) {
  void *in, *out;
  size_t rows, rowValues;
  cudaStream_t stream;
  if (!pointerArg(c, 0, inName, &in) || !sizeArg(c, 1, "rows", &rows) || !sizeArg(c, 2, "rowValues", &rowValues) ||
      !pointerArg(c, 3, outName, &out) || !streamArg(c, 4, &stream)) {
    return nullptr;
  }
  cudaError_t status = launch(in, out, rows, rowValues, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "%s(rows=%zu, rowValues=%zu)", name, rows, rowValues);
  return nullptr;
}

napi_value Dequantize4F16(Call& c) {
  return q4Call(c, "dequantize4F16", "stored", "out", [](void* stored, void* out, size_t rows, size_t rowValues, cudaStream_t stream) {
    return spw_dequantize4_f16(as<const uint8_t>(stored), rows, rowValues, as<uint16_t>(out), stream);
  });
}

napi_value Dequantize4F32(Call& c) {
  return q4Call(c, "dequantize4F32", "stored", "out", [](void* stored, void* out, size_t rows, size_t rowValues, cudaStream_t stream) {
    return spw_dequantize4_f32(as<const uint8_t>(stored), rows, rowValues, as<float>(out), stream);
  });
}

napi_value Quantize4(Call& c) {
  return q4Call(c, "quantize4", "x", "stored", [](void* x, void* stored, size_t rows, size_t rowValues, cudaStream_t stream) {
    return spw_quantize4(as<const float>(x), rows, rowValues, as<uint8_t>(stored), stream);
  });
}

// A group-wise width argument: 2, 3, 4, 8 or 16 (kernels.h spw_groupwise_bytes), else a TypeError.
bool bitsArg(Call& c, size_t index, int* bits) {
  if (!intArg(c, index, "bits", bits)) return false;
  if (spw_groupwise_bytes(1, *bits) == 0) {
    throwTypeError(c.env, "ERR_INVALID_ARG_VALUE", "%s: bits must be 2, 3, 4, 8 or 16, got %d", c.name, *bits);
    return false;
  }
  return true;
}

napi_value GroupwiseBytes(Call& c) {
  size_t values;
  int bits;
  if (!sizeArg(c, 0, "values", &values) || !bitsArg(c, 1, &bits)) return nullptr;
  return numberValue(c.env, static_cast<double>(spw_groupwise_bytes(values, bits)));
}

napi_value DequantizeGroupwiseF32(Call& c) {
  void *stored, *out;
  size_t values;
  int bits;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "stored", &stored) || !sizeArg(c, 1, "values", &values) || !bitsArg(c, 2, &bits) ||
      !pointerArg(c, 3, "out", &out) || !streamArg(c, 4, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_dequantize_groupwise_f32(as<const uint8_t>(stored), values, bits, as<float>(out), stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "dequantizeGroupwiseF32(values=%zu, bits=%d)", values, bits);
  return nullptr;
}

napi_value LinearGroupwise(Call& c) {
  void *x, *w, *out;
  int bits, m, k, n;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "w", &w) || !bitsArg(c, 2, &bits) || !pointerArg(c, 3, "out", &out) ||
      !intArg(c, 4, "m", &m) || !intArg(c, 5, "k", &k) || !intArg(c, 6, "n", &n) || !streamArg(c, 7, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_linear_groupwise(as<const float>(x), as<const uint8_t>(w), bits, as<float>(out), m, k, n, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "linearGroupwise(bits=%d, m=%d, k=%d, n=%d)", bits, m, k, n);
  return nullptr;
}

napi_value ExpertSwiglu(Call& c) {
  void *x, *expert, *scratch, *out;
  int bits, m, hidden, ffn;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "expert", &expert) || !bitsArg(c, 2, &bits) || !intArg(c, 3, "m", &m) ||
      !intArg(c, 4, "hidden", &hidden) || !intArg(c, 5, "ffn", &ffn) || !pointerArg(c, 6, "scratch", &scratch) ||
      !pointerArg(c, 7, "out", &out) || !streamArg(c, 8, &stream)) {
    return nullptr;
  }
  cudaError_t status =
      spw_expert_swiglu(as<const float>(x), as<const uint8_t>(expert), bits, m, hidden, ffn, as<float>(scratch), as<float>(out), stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "expertSwiglu(bits=%d, m=%d, hidden=%d, ffn=%d)", bits, m, hidden, ffn);
  return nullptr;
}

napi_value LinearGroupwiseBias(Call& c) {
  void *x, *w, *bias, *out;
  int bits, m, k, n;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "w", &w) || !bitsArg(c, 2, &bits) || !pointerArg(c, 3, "bias", &bias) ||
      !pointerArg(c, 4, "out", &out) || !intArg(c, 5, "m", &m) || !intArg(c, 6, "k", &k) || !intArg(c, 7, "n", &n) || !streamArg(c, 8, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_linear_groupwise_bias(as<const float>(x), as<const uint8_t>(w), bits, as<const float>(bias), as<float>(out), m, k, n, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "linearGroupwiseBias(bits=%d, m=%d, k=%d, n=%d)", bits, m, k, n);
  return nullptr;
}

napi_value RmsNorm(Call& c) {
  void *x, *weight, *out;
  int rows, cols;
  double eps;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "weight", &weight) || !pointerArg(c, 2, "out", &out) || !intArg(c, 3, "rows", &rows) ||
      !intArg(c, 4, "cols", &cols) || !finiteArg(c, 5, "eps", &eps) || !streamArg(c, 6, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_rms_norm(as<const float>(x), as<const float>(weight), as<float>(out), rows, cols, eps, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "rmsNorm(rows=%d, cols=%d)", rows, cols);
  return nullptr;
}

napi_value Rope(Call& c) {
  void* x;
  int rows, heads, headDim, rowsPerSequence, past;
  double theta;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !intArg(c, 1, "rows", &rows) || !intArg(c, 2, "heads", &heads) || !intArg(c, 3, "headDim", &headDim) ||
      !intArg(c, 4, "rowsPerSequence", &rowsPerSequence) || !intArg(c, 5, "past", &past) || !finiteArg(c, 6, "theta", &theta) ||
      !streamArg(c, 7, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_rope(as<float>(x), rows, heads, headDim, rowsPerSequence, past, theta, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "rope(rows=%d, heads=%d, headDim=%d)", rows, heads, headDim);
  return nullptr;
}

napi_value GqaAttention(Call& c) {
  void *q, *k, *v, *out, *scratch;
  int t, past, heads, kvHeads, headDim;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "q", &q) || !pointerArg(c, 1, "k", &k) || !pointerArg(c, 2, "v", &v) || !pointerArg(c, 3, "out", &out) ||
      !pointerArg(c, 4, "scratch", &scratch) || !intArg(c, 5, "t", &t) || !intArg(c, 6, "past", &past) || !intArg(c, 7, "heads", &heads) ||
      !intArg(c, 8, "kvHeads", &kvHeads) || !intArg(c, 9, "headDim", &headDim) || !streamArg(c, 10, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_gqa_attention(as<const float>(q), as<const float>(k), as<const float>(v), as<float>(out), as<float>(scratch), t, past,
                                         heads, kvHeads, headDim, stream);
  if (status != cudaSuccess)
    return throwCuda(c.env, status, "gqaAttention(t=%d, past=%d, heads=%d, kvHeads=%d, headDim=%d)", t, past, heads, kvHeads, headDim);
  return nullptr;
}

napi_value MoeCombine(Call& c) {
  void *x, *outputs, *weights;
  int rows, k, cols;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "outputs", &outputs) || !pointerArg(c, 2, "weights", &weights) ||
      !intArg(c, 3, "rows", &rows) || !intArg(c, 4, "k", &k) || !intArg(c, 5, "cols", &cols) || !streamArg(c, 6, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_moe_combine(as<float>(x), as<const float>(outputs), as<const float>(weights), rows, k, cols, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "moeCombine(rows=%d, k=%d, cols=%d)", rows, k, cols);
  return nullptr;
}

napi_value GatherRows(Call& c) {
  void *src, *index, *dst;
  int srcRows, rows, cols;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "src", &src) || !intArg(c, 1, "srcRows", &srcRows) || !pointerArg(c, 2, "index", &index) ||
      !intArg(c, 3, "rows", &rows) || !intArg(c, 4, "cols", &cols) || !pointerArg(c, 5, "dst", &dst) || !streamArg(c, 6, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_gather_rows(as<const float>(src), srcRows, as<const int32_t>(index), rows, cols, as<float>(dst), stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "gatherRows(srcRows=%d, rows=%d, cols=%d)", srcRows, rows, cols);
  return nullptr;
}

napi_value ScatterRows(Call& c) {
  void *src, *index, *dst;
  int rows, cols, dstRows;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "src", &src) || !pointerArg(c, 1, "index", &index) || !intArg(c, 2, "rows", &rows) ||
      !intArg(c, 3, "cols", &cols) || !pointerArg(c, 4, "dst", &dst) || !intArg(c, 5, "dstRows", &dstRows) || !streamArg(c, 6, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_scatter_rows(as<const float>(src), as<const int32_t>(index), rows, cols, as<float>(dst), dstRows, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "scatterRows(rows=%d, cols=%d, dstRows=%d)", rows, cols, dstRows);
  return nullptr;
}

napi_value RouterTopK(Call& c) {
  void *logits, *outExperts, *outWeights;
  int rows, experts, k;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "logits", &logits) || !intArg(c, 1, "rows", &rows) || !intArg(c, 2, "experts", &experts) ||
      !intArg(c, 3, "k", &k) || !pointerArg(c, 4, "outExperts", &outExperts) || !pointerArg(c, 5, "outWeights", &outWeights) ||
      !streamArg(c, 6, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_router_top_k(as<const float>(logits), rows, experts, k, as<int32_t>(outExperts), as<float>(outWeights), stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "routerTopK(rows=%d, experts=%d, k=%d)", rows, experts, k);
  return nullptr;
}

napi_value SigmoidGatedAdd(Call& c) {
  void *x, *y, *gate;
  int rows, cols;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !pointerArg(c, 1, "y", &y) || !pointerArg(c, 2, "gate", &gate) || !intArg(c, 3, "rows", &rows) ||
      !intArg(c, 4, "cols", &cols) || !streamArg(c, 5, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_sigmoid_gated_add(as<float>(x), as<const float>(y), as<const float>(gate), rows, cols, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "sigmoidGatedAdd(rows=%d, cols=%d)", rows, cols);
  return nullptr;
}

napi_value ArgmaxRows(Call& c) {
  void *x, *out;
  int rows, cols;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !intArg(c, 1, "rows", &rows) || !intArg(c, 2, "cols", &cols) || !pointerArg(c, 3, "out", &out) ||
      !streamArg(c, 4, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_argmax_rows(as<const float>(x), rows, cols, as<int32_t>(out), stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "argmaxRows(rows=%d, cols=%d)", rows, cols);
  return nullptr;
}

napi_value ArgmaxMerge(Call& c) {
  void *x, *bestValue, *bestIndex;
  int rows, cols, colOffset, first;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "x", &x) || !intArg(c, 1, "rows", &rows) || !intArg(c, 2, "cols", &cols) || !intArg(c, 3, "colOffset", &colOffset) ||
      !pointerArg(c, 4, "bestValue", &bestValue) || !pointerArg(c, 5, "bestIndex", &bestIndex) || !intArg(c, 6, "first", &first) || !streamArg(c, 7, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_argmax_merge(as<const float>(x), rows, cols, colOffset, as<float>(bestValue), as<int32_t>(bestIndex), first, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "argmaxMerge(rows=%d, cols=%d, colOffset=%d)", rows, cols, colOffset);
  return nullptr;
}

napi_value Copy(Call& c) {
  void *src, *dst;
  size_t bytes;
  cudaStream_t stream;
  if (!pointerArg(c, 0, "src", &src) || !pointerArg(c, 1, "dst", &dst) || !sizeArg(c, 2, "bytes", &bytes) || !streamArg(c, 3, &stream)) {
    return nullptr;
  }
  cudaError_t status = spw_copy(src, dst, bytes, stream);
  if (status != cudaSuccess) return throwCuda(c.env, status, "copy(bytes=%zu)", bytes);
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Registration

struct Export {
  const char* name;
  const char* signature;  // for argument-count errors
  size_t arity;
  napi_value (*impl)(Call&);
};

const Export kExports[] = {
    {"probe", "probe()", 0, Probe},
    {"deviceProperties", "deviceProperties(device)", 1, DeviceProperties},
    {"setDevice", "setDevice(device)", 1, SetDevice},
    {"memGetInfo", "memGetInfo()", 0, MemGetInfo},
    {"deviceSynchronize", "deviceSynchronize()", 0, DeviceSynchronize},
    {"malloc", "malloc(bytes)", 1, Malloc},
    {"free", "free(pointer)", 1, Free},
    {"hostAlloc", "hostAlloc(bytes)", 1, HostAlloc},
    {"hostFree", "hostFree(buffer)", 1, HostFree},
    {"streamCreate", "streamCreate()", 0, StreamCreate},
    {"streamDestroy", "streamDestroy(stream)", 1, StreamDestroy},
    {"streamSynchronize", "streamSynchronize(stream)", 1, StreamSynchronize},
    {"streamQuery", "streamQuery(stream)", 1, StreamQuery},
    {"eventCreate", "eventCreate(timing)", 1, EventCreate},
    {"eventDestroy", "eventDestroy(event)", 1, EventDestroy},
    {"eventRecord", "eventRecord(event, stream)", 2, EventRecord},
    {"eventSynchronize", "eventSynchronize(event)", 1, EventSynchronize},
    {"eventQuery", "eventQuery(event)", 1, EventQuery},
    {"eventElapsedMs", "eventElapsedMs(start, end)", 2, EventElapsedMs},
    {"streamWaitEvent", "streamWaitEvent(stream, event)", 2, StreamWaitEvent},
    {"memcpyHtoD", "memcpyHtoD(dst, src, stream)", 3, MemcpyHtoD},
    {"memcpyDtoH", "memcpyDtoH(dst, src, stream)", 3, MemcpyDtoH},
    {"memcpyDtoD", "memcpyDtoD(dst, src, bytes, stream)", 4, MemcpyDtoD},
    {"memset", "memset(dst, byte, bytes, stream)", 4, Memset},
    {"linear", "linear(x, w, bias, out, m, k, n, stream)", 8, Linear},
    {"layerNorm", "layerNorm(x, gamma, beta, out, rows, cols, eps, stream)", 8, LayerNorm},
    {"softmaxRows", "softmaxRows(x, rows, cols, stream)", 4, SoftmaxRows},
    {"attentionScratchFloats", "attentionScratchFloats(t, past, heads)", 3, AttentionScratchFloats},
    {"attention", "attention(q, k, v, out, scratch, t, past, heads, headDim, stream)", 10, Attention},
    {"relu", "relu(x, n, stream)", 3, Relu},
    {"add", "add(x, y, n, stream)", 4, Add},
    {"embedding", "embedding(table, ids, count, dim, rows, out, stream)", 7, Embedding},
    {"f32ToF16", "f32ToF16(x, out, n, stream)", 4, F32ToF16},
    {"f16ToF32", "f16ToF32(x, out, n, stream)", 4, F16ToF32},
    {"q4Bytes", "q4Bytes(rowValues)", 1, Q4Bytes},
    {"dequantize4F16", "dequantize4F16(stored, rows, rowValues, out, stream)", 5, Dequantize4F16},
    {"dequantize4F32", "dequantize4F32(stored, rows, rowValues, out, stream)", 5, Dequantize4F32},
    {"quantize4", "quantize4(x, rows, rowValues, stored, stream)", 5, Quantize4},
    {"groupwiseBytes", "groupwiseBytes(values, bits)", 2, GroupwiseBytes},
    {"dequantizeGroupwiseF32", "dequantizeGroupwiseF32(stored, values, bits, out, stream)", 5, DequantizeGroupwiseF32},
    {"linearGroupwise", "linearGroupwise(x, w, bits, out, m, k, n, stream)", 8, LinearGroupwise},
    {"expertSwiglu", "expertSwiglu(x, expert, bits, m, hidden, ffn, scratch, out, stream)", 9, ExpertSwiglu},
    {"linearGroupwiseBias", "linearGroupwiseBias(x, w, bits, bias, out, m, k, n, stream)", 9, LinearGroupwiseBias},
    {"rmsNorm", "rmsNorm(x, weight, out, rows, cols, eps, stream)", 7, RmsNorm},
    {"rope", "rope(x, rows, heads, headDim, rowsPerSequence, past, theta, stream)", 8, Rope},
    {"gqaAttention", "gqaAttention(q, k, v, out, scratch, t, past, heads, kvHeads, headDim, stream)", 11, GqaAttention},
    {"moeCombine", "moeCombine(x, outputs, weights, rows, k, cols, stream)", 7, MoeCombine},
    {"gatherRows", "gatherRows(src, srcRows, index, rows, cols, dst, stream)", 7, GatherRows},
    {"scatterRows", "scatterRows(src, index, rows, cols, dst, dstRows, stream)", 7, ScatterRows},
    {"routerTopK", "routerTopK(logits, rows, experts, k, outExperts, outWeights, stream)", 7, RouterTopK},
    {"sigmoidGatedAdd", "sigmoidGatedAdd(x, y, gate, rows, cols, stream)", 6, SigmoidGatedAdd},
    {"argmaxRows", "argmaxRows(x, rows, cols, out, stream)", 5, ArgmaxRows},
    {"argmaxMerge", "argmaxMerge(x, rows, cols, colOffset, bestValue, bestIndex, first, stream)", 8, ArgmaxMerge},
    {"copy", "copy(src, dst, bytes, stream)", 4, Copy},
};

napi_value Dispatch(napi_env env, napi_callback_info info) {
  Call call;
  call.env = env;
  call.argc = kMaxArgs;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &call.argc, call.argv, nullptr, &data) != napi_ok || data == nullptr) {
    napi_throw_error(env, nullptr, "spillway_cuda: could not read the call's arguments");
    return nullptr;
  }
  const Export* e = static_cast<const Export*>(data);
  call.name = e->name;
  if (call.argc != e->arity) {
    return throwTypeError(env, call.argc < e->arity ? "ERR_MISSING_ARGS" : "ERR_INVALID_ARG_COUNT",
                          "%s expects %zu argument%s, got %zu", e->signature, e->arity, e->arity == 1 ? "" : "s", call.argc);
  }
  return e->impl(call);
}

}  // namespace

NAPI_MODULE_INIT() {
  constexpr size_t count = sizeof kExports / sizeof kExports[0];
  napi_property_descriptor properties[count + 1];
  for (size_t i = 0; i < count; i++) {
    properties[i] = napi_property_descriptor{kExports[i].name, nullptr, Dispatch, nullptr, nullptr, nullptr, napi_enumerable,
                                             const_cast<Export*>(&kExports[i])};
  }
  napi_value buildInfo;
  if (napi_create_object(env, &buildInfo) != napi_ok) return nullptr;
  setNumber(env, buildInfo, "cudaRuntimeVersion", CUDART_VERSION);
  setString(env, buildInfo, "archs", SPW_CUDA_ARCHS);
  napi_object_freeze(env, buildInfo);
  properties[count] = napi_property_descriptor{"buildInfo", nullptr, nullptr, nullptr, nullptr, buildInfo, napi_enumerable, nullptr};
  if (napi_define_properties(env, exports, count + 1, properties) != napi_ok) return nullptr;
  return exports;
}
