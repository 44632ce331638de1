// fuse on the CPU: for each stream, one parallel pass over the B*T targets. Each target is resolved by
// resolve_target (the function resample and the CUDA kernels use) against that stream's times, and the
// stream's D_k columns are written at their column offset of the [B,T,sum D] output: copied or
// interpolated in float32 (float64 for float64 data) from the stream's own dtype, rounded once to out_dtype.
// The backward parallelises over rows b per stream, so its scatter needs no atomics and is deterministic.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

#include "cpu/resample_rows.h"
#include "fuse.h"

namespace robocache {
namespace {

template <typename in_t, typename out_t, typename time_t>
void fuse_stream_forward(const at::Tensor& data, const at::Tensor& times, const at::Tensor& tgt_times,
                         const std::vector<int64_t>& L, const FuseArgs& a, int64_t k, at::Tensor& out,
                         at::Tensor& valid) {
  const FuseStream& s = a.streams[k];
  const in_t* v = data.const_data_ptr<in_t>();
  const int64_t vb = data.stride(0), vs = data.stride(1), vd = data.stride(2);
  const TimeView<time_t> src(times), tgt(tgt_times);
  out_t* o = out.mutable_data_ptr<out_t>() + s.offset;
  bool* ok = valid.mutable_data_ptr<bool>() + k;
  const int64_t T = a.T, D = s.D, K = a.K, row_stride = a.total_D;
  const bool slerp = s.mode == ResampleMode::Slerp;

  at::parallel_for(0, a.B * T, grain_for_columns(D), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / T;
      const TargetPlan p = resolve_target(src.row(b), L[b], tgt.at(b, i % T), s.mode, OutOfRange::Hold,
                                          s.has_tolerance, s.tolerance);
      ok[i * K] = p.valid;
      write_target_row<in_t, out_t>(p, v + b * vb + p.left * vs, v + b * vb + p.right * vs, vd, D, slerp,
                                    o + i * row_stride);
    }
  });
}

#define ROBOCACHE_DISPATCH_DATA_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

std::tuple<at::Tensor, at::Tensor> fuse_cpu(at::TensorList data, at::TensorList times, const at::Tensor& tgt_times,
                                            std::vector<std::string> modes, std::vector<double> tolerances,
                                            const c10::List<std::optional<at::Tensor>>& src_lengths,
                                            std::optional<c10::string_view> out_dtype) {
  constexpr const char* op = "fuse";
  const FuseArgs a = check_fuse_args(op, data, times, tgt_times, modes, &tolerances, src_lengths,
                                     parse_out_dtype(out_dtype, op));
  if (debug_checks_enabled()) debug_check_fuse_inputs(times, src_lengths, a, op);
  at::Tensor out = at::empty({a.B, a.T, a.total_D}, data[0].options().dtype(a.out_dtype));
  at::Tensor valid = at::empty({a.B, a.T, a.K}, data[0].options().dtype(at::kBool));
  for (int64_t k = 0; k < a.K; ++k) {
    const std::vector<int64_t> L = checked_row_lengths(src_lengths.get(k), a.B, a.streams[k].S, op, k);
    if (a.B * a.T == 0) continue;
    ROBOCACHE_DISPATCH_DATA_TYPES(data[k].scalar_type(), "fuse_cpu", [&] {
      using in_t = scalar_t;
      ROBOCACHE_DISPATCH_DATA_TYPES(a.out_dtype, "fuse_cpu", [&] {
        using out_t = scalar_t;
        ROBOCACHE_DISPATCH_TIME_TYPES(tgt_times.scalar_type(), "fuse_cpu", [&] {
          fuse_stream_forward<in_t, out_t, time_t>(data[k], times[k], tgt_times, L, a, k, out, valid);
        });
      });
    });
  }
  return {out, valid};
}

// grad_data_k[b, left/right] += weights * grad_out[b, t, offset_k + d], accumulated in float32 (float64).
template <typename in_t, typename grad_t, typename time_t>
void fuse_stream_backward(const at::Tensor& grad_out, const at::Tensor& times, const at::Tensor& tgt_times,
                          const std::vector<int64_t>& L, const FuseArgs& a, int64_t k, at::Tensor& acc) {
  using acc_t = at::opmath_type<in_t>;
  const FuseStream& s = a.streams[k];
  const grad_t* g = grad_out.const_data_ptr<grad_t>() + s.offset * grad_out.stride(2);
  const int64_t gb = grad_out.stride(0), gt = grad_out.stride(1), gc = grad_out.stride(2);
  const TimeView<time_t> src(times), tgt(tgt_times);
  acc_t* gd = acc.mutable_data_ptr<acc_t>();  // contiguous [B,S,D]
  const int64_t S = s.S, T = a.T, D = s.D;

  at::parallel_for(0, a.B, 1, [&](int64_t b_begin, int64_t b_end) {
    for (int64_t b = b_begin; b < b_end; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        const TargetPlan p = resolve_target(src.row(b), L[b], tgt.at(b, t), s.mode, OutOfRange::Hold, false, 0.0);
        if (p.kind != TargetKind::Copy && p.kind != TargetKind::Lerp) continue;
        const grad_t* grow = g + b * gb + t * gt;
        scatter_target_grad(p, grow, gc, D, gd + (b * S + p.left) * D, gd + (b * S + p.right) * D);
      }
    }
  });
}

std::vector<at::Tensor> fuse_backward_cpu(const at::Tensor& grad_out, at::TensorList data, at::TensorList times,
                                          const at::Tensor& tgt_times, std::vector<std::string> modes,
                                          const c10::List<std::optional<at::Tensor>>& src_lengths) {
  constexpr const char* op = "_fuse_backward";
  const FuseArgs a = check_fuse_backward_args(grad_out, data, times, tgt_times, modes, src_lengths);
  std::vector<at::Tensor> grads;
  grads.reserve(a.K);
  for (int64_t k = 0; k < a.K; ++k) {
    const FuseStream& s = a.streams[k];
    const std::vector<int64_t> L = checked_row_lengths(src_lengths.get(k), a.B, s.S, op, k);
    const auto dtype = data[k].scalar_type();
    if (s.mode == ResampleMode::Slerp) {  // no gradient (the autograd formula raises when one is asked for)
      grads.push_back(at::zeros_like(data[k], at::MemoryFormat::Contiguous));
      continue;
    }
    const auto acc_dtype = dtype == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor acc = at::zeros({a.B, s.S, s.D}, data[k].options().dtype(acc_dtype));
    if (a.B * a.T * s.D > 0) {
      ROBOCACHE_DISPATCH_DATA_TYPES(dtype, "fuse_backward_cpu", [&] {
        using in_t = scalar_t;
        ROBOCACHE_DISPATCH_DATA_TYPES(grad_out.scalar_type(), "fuse_backward_cpu", [&] {
          using grad_t = scalar_t;
          ROBOCACHE_DISPATCH_TIME_TYPES(tgt_times.scalar_type(), "fuse_backward_cpu", [&] {
            fuse_stream_backward<in_t, grad_t, time_t>(grad_out, times[k], tgt_times, L, a, k, acc);
          });
        });
      });
    }
    grads.push_back(acc.to(dtype));
  }
  return grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(robocache, CPU, m) {
  m.impl("fuse", &fuse_cpu);
  m.impl("_fuse_backward", &fuse_backward_cpu);
}

}  // namespace robocache
