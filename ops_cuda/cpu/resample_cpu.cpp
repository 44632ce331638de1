// resample on the CPU: one parallel pass over the B*T targets. Each target is resolved once
// (resolve_target, shared with CUDA), then its D columns are copied or interpolated in float32
// (float64 for float64 data). The backward parallelises over rows b, so the scatter into grad_data
// needs no atomics and is deterministic.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

#include "cpu/resample_rows.h"
#include "resample.h"

namespace robocache {
namespace {

template <typename scalar_t, typename time_t>
void resample_forward_impl(const at::Tensor& data, const at::Tensor& src_times, const at::Tensor& tgt_times,
                           const std::vector<int64_t>& L, const ResampleArgs& a, at::Tensor& out,
                           at::Tensor& valid) {
  const scalar_t* v = data.const_data_ptr<scalar_t>();
  const int64_t vb = data.stride(0), vs = data.stride(1), vd = data.stride(2);
  const TimeView<time_t> src(src_times), tgt(tgt_times);
  scalar_t* o = out.mutable_data_ptr<scalar_t>();
  bool* ok = valid.mutable_data_ptr<bool>();
  const int64_t T = a.T, D = a.D;

  at::parallel_for(0, a.B * T, grain_for_columns(D), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / T;
      const TargetPlan p =
          resolve_target(src.row(b), L[b], tgt.at(b, i % T), a.mode, a.oor, a.has_tolerance, a.tolerance);
      ok[i] = p.valid;
      write_target_row<scalar_t, scalar_t>(p, v + b * vb + p.left * vs, v + b * vb + p.right * vs, vd, D,
                                           a.mode == ResampleMode::Slerp, o + i * D);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> resample_cpu(const at::Tensor& data, const at::Tensor& src_times,
                                                const at::Tensor& tgt_times, c10::string_view mode,
                                                const std::optional<at::Tensor>& src_lengths,
                                                std::optional<double> tolerance, c10::string_view out_of_range) {
  const ResampleArgs a = check_resample_args(data, src_times, tgt_times, mode, src_lengths, tolerance, out_of_range);
  const std::vector<int64_t> L = checked_row_lengths(src_lengths, a.B, a.S, "resample");
  if (debug_checks_enabled()) debug_check_resample_inputs(src_times, src_lengths, a.S, "resample");
  at::Tensor out = at::empty({a.B, a.T, a.D}, data.options());
  at::Tensor valid = at::empty({a.B, a.T}, data.options().dtype(at::kBool));
  if (a.B * a.T == 0) return {out, valid};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, data.scalar_type(), "resample_cpu", [&] {
    ROBOCACHE_DISPATCH_TIME_TYPES(src_times.scalar_type(), "resample_cpu", [&] {
      resample_forward_impl<scalar_t, time_t>(data, src_times, tgt_times, L, a, out, valid);
    });
  });
  return {out, valid};
}

// grad_data[b, left/right] += weights * grad_out[b, t]; grad_tgt[b, t] = <grad_out[b, t], slope>.
template <typename scalar_t, typename time_t>
void resample_backward_impl(const at::Tensor& grad_out, const at::Tensor& data, const at::Tensor& src_times,
                            const at::Tensor& tgt_times, const std::vector<int64_t>& L, const ResampleArgs& a,
                            at::Tensor& grad_data_acc, at::Tensor& grad_tgt) {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* g = grad_out.const_data_ptr<scalar_t>();  // contiguous [B,T,D]
  const scalar_t* v = data.const_data_ptr<scalar_t>();
  const int64_t vb = data.stride(0), vs = data.stride(1), vd = data.stride(2);
  const TimeView<time_t> src(src_times), tgt(tgt_times);
  acc_t* gd = grad_data_acc.defined() ? grad_data_acc.mutable_data_ptr<acc_t>() : nullptr;  // contiguous
  using time_grad_t = std::conditional_t<std::is_same_v<time_t, double>, double, float>;
  time_grad_t* gt = grad_tgt.defined() ? grad_tgt.mutable_data_ptr<time_grad_t>() : nullptr;  // [B,T]
  const int64_t S = a.S, T = a.T, D = a.D;

  at::parallel_for(0, a.B, 1, [&](int64_t b_begin, int64_t b_end) {
    for (int64_t b = b_begin; b < b_end; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        const TargetPlan p =
            resolve_target(src.row(b), L[b], tgt.at(b, t), a.mode, a.oor, a.has_tolerance, a.tolerance);
        const scalar_t* grow = g + (b * T + t) * D;
        if (gd != nullptr && (p.kind == TargetKind::Copy || p.kind == TargetKind::Lerp)) {
          scatter_target_grad(p, grow, 1, D, gd + (b * S + p.left) * D, gd + (b * S + p.right) * D);
        }
        if (gt != nullptr) {
          double acc = 0.0;
          if (p.slope_scale != 0.0 && p.kind != TargetKind::Zero && p.kind != TargetKind::NaN) {
            const scalar_t* lo = v + b * vb + p.slope_lo * vs;
            const scalar_t* hi = v + b * vb + p.slope_hi * vs;
            acc_t dot = 0;
            for (int64_t d = 0; d < D; ++d) {
              dot += static_cast<acc_t>(grow[d]) *
                     (static_cast<acc_t>(hi[d * vd]) - static_cast<acc_t>(lo[d * vd]));
            }
            acc = static_cast<double>(dot) * p.slope_scale;
          }
          gt[b * T + t] = static_cast<time_grad_t>(acc);
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> resample_backward_cpu(const at::Tensor& grad_out, const at::Tensor& data,
                                                         const at::Tensor& src_times, const at::Tensor& tgt_times,
                                                         c10::string_view mode,
                                                         const std::optional<at::Tensor>& src_lengths,
                                                         c10::string_view out_of_range,
                                                         std::array<bool, 2> output_mask) {
  const ResampleArgs a =
      check_resample_args(data, src_times, tgt_times, mode, src_lengths, std::nullopt, out_of_range);
  const std::vector<int64_t> L = checked_row_lengths(src_lengths, a.B, a.S, "resample");
  ResampleBackwardBuffers buffers = start_resample_backward(grad_out, data, tgt_times, a, output_mask);
  if (a.B * a.T > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, data.scalar_type(), "resample_backward_cpu", [&] {
      ROBOCACHE_DISPATCH_TIME_TYPES(src_times.scalar_type(), "resample_backward_cpu", [&] {
        resample_backward_impl<scalar_t, time_t>(buffers.grad_out, data, src_times, tgt_times, L, a,
                                                 buffers.grad_data_acc, buffers.grad_tgt);
      });
    });
  }
  return finish_resample_backward(buffers, data, tgt_times);
}

}  // namespace

TORCH_LIBRARY_IMPL(robocache, CPU, m) {
  m.impl("resample", &resample_cpu);
  m.impl("_resample_backward", &resample_backward_cpu);
}

}  // namespace robocache
