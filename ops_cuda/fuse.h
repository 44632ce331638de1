// fuse: the host-side contract shared by the CPU and CUDA kernels.
//
// K streams (data_k [B,S_k,D_k], times_k [B,S_k] or [S_k]) are each resampled onto one target timeline
// (tgt_times [B,T] or [T]) exactly as `resample` with out_of_range="hold" does, and written side by side
// into out [B,T,sum D_k] (stream k's columns start at offset_k = D_0 + ... + D_{k-1}); valid [B,T,K].
// Each stream is computed in float32 (float64 for float64 data) from its own dtype and rounded once to
// out_dtype. Per stream: a mode, a tolerance (the op takes float[]: a negative value means none, because
// float?[] does not survive torch.export serialization), and optional src_lengths [B].
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "resample.h"

namespace robocache {

struct FuseStream {
  int64_t S, D, offset;
  ResampleMode mode;
  bool has_tolerance;
  double tolerance;
};

struct FuseArgs {
  int64_t B, T, K, total_D;
  at::ScalarType out_dtype;
  std::vector<FuseStream> streams;
};

// `tolerances` is null for the backward (which ignores them); `out_dtype` is only used by the forward.
FuseArgs check_fuse_args(const char* op, at::TensorList data, at::TensorList times, const at::Tensor& tgt_times,
                         const std::vector<std::string>& modes, const std::vector<double>* tolerances,
                         const c10::List<std::optional<at::Tensor>>& src_lengths,
                         std::optional<at::ScalarType> out_dtype);

// _fuse_backward's checks, shared by the CPU and CUDA kernels: grad_out is a float tensor of the forward's
// output shape, on data's device.
FuseArgs check_fuse_backward_args(const at::Tensor& grad_out, at::TensorList data, at::TensorList times,
                                  const at::Tensor& tgt_times, const std::vector<std::string>& modes,
                                  const c10::List<std::optional<at::Tensor>>& src_lengths);

// The op's out_dtype argument: "float32", "float64", "float16" or "bfloat16" (or none).
std::optional<at::ScalarType> parse_out_dtype(const std::optional<c10::string_view>& name, const char* op);

// ROBOCACHE_DEBUG=1 checks of every stream (sorted times, lengths in range). Synchronises on CUDA.
void debug_check_fuse_inputs(at::TensorList times, const c10::List<std::optional<at::Tensor>>& src_lengths,
                             const FuseArgs& a, const char* op);

}  // namespace robocache
