// The CPU half of resample's per-target work, shared by the resample and fuse CPU kernels (the CUDA
// counterpart is cuda/resample_tile.cuh): strided time views, the parallel grain, writing one target's
// D columns from its plan, and scattering its gradient back.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "resample.h"

namespace robocache {

// Strided [B, *] time views as raw pointers; a 1-D time tensor is a batch stride of 0.
template <typename T>
struct TimeView {
  const T* ptr;
  int64_t stride_b, stride_i;
  explicit TimeView(const at::Tensor& t)
      : ptr(t.const_data_ptr<T>()), stride_b(t.dim() == 2 ? t.stride(0) : 0), stride_i(t.stride(-1)) {}
  TimeRow<T> row(int64_t b) const { return {ptr + b * stride_b, stride_i}; }
  T at(int64_t b, int64_t i) const { return ptr[b * stride_b + i * stride_i]; }
};

// Row lengths (S for every row when none are given), each checked against [0, S]: free on the CPU, where
// reading them needs no device sync. `stream` >= 0 names fuse's stream in the message (src_lengths[k]).
inline std::vector<int64_t> checked_row_lengths(const std::optional<at::Tensor>& lengths, int64_t B, int64_t S,
                                                const char* op, int64_t stream = -1) {
  std::vector<int64_t> L(B, S);
  if (!lengths.has_value()) return L;
  const at::Tensor l = lengths->contiguous();
  const int64_t* p = l.const_data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK_VALUE(p[b] >= 0 && p[b] <= S, op, ": expected every src_lengths",
                      stream >= 0 ? c10::str("[", stream, "]") : std::string(), " value in [0, ", S, "], got ", p[b],
                      " at index ", b);
    L[b] = p[b];
  }
  return L;
}

// Targets per parallel_for chunk: about GRAIN_SIZE elements of output each.
inline int64_t grain_for_columns(int64_t D) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / (D + 32)); }

// Writes row[0, D) for a target planned as `p`: lo/hi are its source rows (column stride vd). Arithmetic in
// float32 (float64 for float64 data), rounded once to out_t; slerp works on groups of 4 columns.
template <typename in_t, typename out_t>
void write_target_row(const TargetPlan& p, const in_t* lo, const in_t* hi, int64_t vd, int64_t D, bool slerp,
                      out_t* row) {
  using acc_t = at::opmath_type<in_t>;
  switch (p.kind) {
    case TargetKind::Zero:
      std::fill(row, row + D, out_t(0));
      break;
    case TargetKind::NaN:
      std::fill(row, row + D, std::numeric_limits<out_t>::quiet_NaN());
      break;
    case TargetKind::Copy:
      if (slerp) {
        for (int64_t d = 0; d < D; d += 4) {
          acc_t q[4];
          for (int c = 0; c < 4; ++c) q[c] = static_cast<acc_t>(lo[(d + c) * vd]);
          normalize_quaternion(q);
          for (int c = 0; c < 4; ++c) row[d + c] = static_cast<out_t>(q[c]);
        }
      } else {
        for (int64_t d = 0; d < D; ++d) row[d] = static_cast<out_t>(lo[d * vd]);
      }
      break;
    case TargetKind::Lerp: {
      const acc_t w = static_cast<acc_t>(p.weight);
      if (slerp) {
        for (int64_t d = 0; d < D; d += 4) {
          acc_t q0[4], q1[4], q[4];
          for (int c = 0; c < 4; ++c) {
            q0[c] = static_cast<acc_t>(lo[(d + c) * vd]);
            q1[c] = static_cast<acc_t>(hi[(d + c) * vd]);
          }
          slerp_quaternion(q0, q1, w, q);
          for (int c = 0; c < 4; ++c) row[d + c] = static_cast<out_t>(q[c]);
        }
      } else if (vd == 1) {  // contiguous columns: a loop the compiler vectorises
        for (int64_t d = 0; d < D; ++d) {
          const acc_t l = static_cast<acc_t>(lo[d]);
          row[d] = static_cast<out_t>(l + w * (static_cast<acc_t>(hi[d]) - l));
        }
      } else {
        for (int64_t d = 0; d < D; ++d) {
          const acc_t l = static_cast<acc_t>(lo[d * vd]);
          row[d] = static_cast<out_t>(l + w * (static_cast<acc_t>(hi[d * vd]) - l));
        }
      }
      break;
    }
  }
}

// The data gradient of one copied or interpolated target: lo += (1 - w) * g and hi += w * g (w = 0 for a
// copy), with g the target's grad_out row (column stride gc) and lo/hi contiguous accumulator rows.
template <typename acc_t, typename grad_t>
void scatter_target_grad(const TargetPlan& p, const grad_t* grow, int64_t gc, int64_t D, acc_t* lo, acc_t* hi) {
  const acc_t w = p.kind == TargetKind::Lerp ? static_cast<acc_t>(p.weight) : acc_t(0);
  for (int64_t d = 0; d < D; ++d) {
    const acc_t gv = static_cast<acc_t>(grow[d * gc]);
    lo[d] += (acc_t(1) - w) * gv;
    hi[d] += w * gv;
  }
}

}  // namespace robocache
