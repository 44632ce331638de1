// resample on CUDA: one launch, one block per (row b, tile of targets).
//
// Phase 1: the row's source times are staged in shared memory (when they fit), and each target of the
// tile is resolved once by `resolve_target` (shared with the CPU kernel) into (left, right, weight,
// kind), kept in shared memory; the valid mask is written here.
// Phase 2: all threads sweep the tile's (target, column group) pairs: a group is VEC contiguous columns
// moved as one 16-byte access when the data rows allow it (last dim contiguous, aligned), otherwise one
// strided element; slerp works on groups of 4 (one quaternion). So each target's search happens once
// and is shared by its D columns, and source rows are read with coalesced wide loads.
//
// The backward recomputes the plans and scatters grad_out into a float32 (float64) buffer with atomics,
// and reduces <grad_out, slope> per target in shared memory for the time gradient.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/common.cuh"
#include "resample.h"

namespace robocache {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxTile = 256;                 // targets per block, at most
constexpr int64_t kStagedTimeBytes = 16384;   // rows of source times up to this size go to shared memory

template <typename scalar_t, typename time_t>
struct ResampleParams {
  const scalar_t* data;
  int64_t data_sb, data_ss, data_sd;
  const time_t* src;
  int64_t src_sb, src_ss;
  const time_t* tgt;
  int64_t tgt_sb, tgt_st;
  const int64_t* lengths;  // null: every row has S samples
  int64_t lengths_stride;
  int64_t S, T, D;
  int64_t tiles_per_row;
  int tile_t;
  bool stage_times;
  ResampleMode mode;
  OutOfRange oor;
  bool has_tolerance;
  double tolerance;
};

// Row b's real length (clamped: lengths cannot be checked on the host without a sync).
template <typename P>
__device__ __forceinline__ int64_t row_length(const P& p, int64_t b) {
  if (p.lengths == nullptr) return p.S;
  const int64_t L = p.lengths[b * p.lengths_stride];
  return L < 0 ? 0 : (L > p.S ? p.S : L);
}

// The row's times, from shared memory when staged (all threads must call this).
template <typename time_t>
__device__ __forceinline__ TimeRow<time_t> row_times(const time_t* src, int64_t stride, int64_t L, bool staged,
                                                     time_t* shared) {
  if (!staged) return {src, stride};
  for (int64_t i = threadIdx.x; i < L; i += blockDim.x) shared[i] = src[i * stride];
  __syncthreads();
  return {shared, 1};
}

template <typename scalar_t, typename time_t>
__device__ __forceinline__ TargetPlan plan_target(const ResampleParams<scalar_t, time_t>& p, TimeRow<time_t> times,
                                                  int64_t L, int64_t b, int64_t t) {
  return resolve_target(times, L, p.tgt[b * p.tgt_sb + t * p.tgt_st], p.mode, p.oor, p.has_tolerance, p.tolerance);
}

template <typename scalar_t, int N, int VEC>
__device__ __forceinline__ void load_group(const scalar_t* row, int64_t col, int64_t sd, scalar_t (&x)[N]) {
  if constexpr (VEC > 1) {
    static_assert(N == VEC, "vector groups are one access");
    const Vec<scalar_t, VEC> v = load_vec<scalar_t, VEC>(row + col);
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = v.v[k];
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = row[(col + k) * sd];
  }
}

template <typename scalar_t, int N>
__device__ __forceinline__ void store_group(scalar_t* out, const scalar_t (&x)[N]) {
  if constexpr (N > 1 && (N * sizeof(scalar_t)) % 4 == 0 && N * sizeof(scalar_t) <= 16) {
    Vec<scalar_t, N> v;
#pragma unroll
    for (int k = 0; k < N; ++k) v.v[k] = x[k];
    store_vec<scalar_t, N>(out, v);
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) out[k] = x[k];
  }
}

// GROUP columns per work item: VEC for plain modes, 4 (a quaternion) for slerp.
template <typename scalar_t, typename time_t, int VEC, bool SLERP>
__global__ void __launch_bounds__(kThreads) resample_kernel(const ResampleParams<scalar_t, time_t> p,
                                                            scalar_t* __restrict__ out, bool* __restrict__ valid) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int GROUP = SLERP ? 4 : VEC;
  __shared__ int32_t s_left[kMaxTile], s_right[kMaxTile];
  __shared__ acc_t s_weight[kMaxTile];
  __shared__ TargetKind s_kind[kMaxTile];
  extern __shared__ __align__(16) unsigned char s_times_raw[];

  const int64_t b = blockIdx.x / p.tiles_per_row;
  const int64_t t0 = (blockIdx.x - b * p.tiles_per_row) * p.tile_t;
  const int count = static_cast<int>(min(static_cast<int64_t>(p.tile_t), p.T - t0));
  const int64_t L = row_length(p, b);
  const TimeRow<time_t> times =
      row_times(p.src + b * p.src_sb, p.src_ss, L, p.stage_times, reinterpret_cast<time_t*>(s_times_raw));

  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const TargetPlan plan = plan_target(p, times, L, b, t0 + i);
    s_left[i] = static_cast<int32_t>(plan.left);
    s_right[i] = static_cast<int32_t>(plan.right);
    s_weight[i] = static_cast<acc_t>(plan.weight);
    s_kind[i] = plan.kind;
    valid[b * p.T + t0 + i] = plan.valid;
  }
  __syncthreads();

  const scalar_t* rows = p.data + b * p.data_sb;
  scalar_t* tile_out = out + (b * p.T + t0) * p.D;
  const int64_t groups = p.D / GROUP;
  const int64_t items = count * groups;
  for (int64_t item = threadIdx.x; item < items; item += blockDim.x) {
    const int i = static_cast<int>(item / groups);
    const int64_t col = (item - i * groups) * GROUP;
    const TargetKind kind = s_kind[i];
    scalar_t r[GROUP];
    if (kind == TargetKind::Copy || kind == TargetKind::Lerp) {
      load_group<scalar_t, GROUP, (SLERP ? 1 : VEC)>(rows + s_left[i] * p.data_ss, col, p.data_sd, r);
      if (kind == TargetKind::Lerp || SLERP) {
        acc_t a[GROUP];
#pragma unroll
        for (int k = 0; k < GROUP; ++k) a[k] = static_cast<acc_t>(r[k]);
        if (kind == TargetKind::Lerp) {
          scalar_t hi[GROUP];
          load_group<scalar_t, GROUP, (SLERP ? 1 : VEC)>(rows + s_right[i] * p.data_ss, col, p.data_sd, hi);
          const acc_t w = s_weight[i];
          if constexpr (SLERP) {
            acc_t bq[4], q[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) bq[k] = static_cast<acc_t>(hi[k]);
            slerp_quaternion(a, bq, w, q);
#pragma unroll
            for (int k = 0; k < 4; ++k) a[k] = q[k];
          } else {
#pragma unroll
            for (int k = 0; k < GROUP; ++k) a[k] = a[k] + w * (static_cast<acc_t>(hi[k]) - a[k]);
          }
        } else if constexpr (SLERP) {
          normalize_quaternion(a);
        }
#pragma unroll
        for (int k = 0; k < GROUP; ++k) r[k] = static_cast<scalar_t>(a[k]);
      }
    } else {
      const scalar_t fill = kind == TargetKind::NaN ? std::numeric_limits<scalar_t>::quiet_NaN() : scalar_t(0);
#pragma unroll
      for (int k = 0; k < GROUP; ++k) r[k] = fill;
    }
    store_group<scalar_t, GROUP>(tile_out + i * p.D + col, r);
  }
}

template <typename scalar_t, typename time_t>
ResampleParams<scalar_t, time_t> make_params(const at::Tensor& data, const at::Tensor& src_times,
                                             const at::Tensor& tgt_times,
                                             const std::optional<at::Tensor>& src_lengths, const ResampleArgs& a,
                                             int group) {
  ResampleParams<scalar_t, time_t> p;
  p.data = data.const_data_ptr<scalar_t>();
  p.data_sb = data.stride(0);
  p.data_ss = data.stride(1);
  p.data_sd = data.stride(2);
  p.src = src_times.const_data_ptr<time_t>();
  p.src_sb = src_times.dim() == 2 ? src_times.stride(0) : 0;
  p.src_ss = src_times.stride(-1);
  p.tgt = tgt_times.const_data_ptr<time_t>();
  p.tgt_sb = tgt_times.dim() == 2 ? tgt_times.stride(0) : 0;
  p.tgt_st = tgt_times.stride(-1);
  p.lengths = src_lengths.has_value() ? src_lengths->const_data_ptr<int64_t>() : nullptr;
  p.lengths_stride = src_lengths.has_value() ? src_lengths->stride(0) : 0;
  p.S = a.S;
  p.T = a.T;
  p.D = a.D;
  // About 4 work items per thread: enough loads in flight, and still many blocks on large shapes.
  const int64_t groups = std::max<int64_t>(1, a.D / group);
  p.tile_t = static_cast<int>(std::clamp<int64_t>(4 * kThreads / groups, 1, kMaxTile));
  p.tile_t = static_cast<int>(std::min<int64_t>(p.tile_t, std::max<int64_t>(a.T, 1)));
  p.tiles_per_row = ceil_div(a.T, p.tile_t);
  p.stage_times = a.S * static_cast<int64_t>(sizeof(time_t)) <= kStagedTimeBytes;
  p.mode = a.mode;
  p.oor = a.oor;
  p.has_tolerance = a.has_tolerance;
  p.tolerance = a.tolerance;
  return p;
}

template <typename scalar_t, typename time_t, int VEC, bool SLERP>
void launch_forward(const ResampleParams<scalar_t, time_t>& p, int64_t B, at::Tensor& out, at::Tensor& valid) {
  const int64_t blocks = B * p.tiles_per_row;
  TORCH_CHECK_VALUE(blocks < (int64_t{1} << 31), "resample: too many rows and targets for one launch (", blocks,
                    " blocks)");
  const size_t shared = p.stage_times ? p.S * sizeof(time_t) : 0;
  resample_kernel<scalar_t, time_t, VEC, SLERP><<<blocks, kThreads, shared, c10::cuda::getCurrentCUDAStream()>>>(
      p, out.mutable_data_ptr<scalar_t>(), valid.mutable_data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> resample_cuda(const at::Tensor& data, const at::Tensor& src_times,
                                                 const at::Tensor& tgt_times, c10::string_view mode,
                                                 const std::optional<at::Tensor>& src_lengths,
                                                 std::optional<double> tolerance, c10::string_view out_of_range) {
  const ResampleArgs a = check_resample_args(data, src_times, tgt_times, mode, src_lengths, tolerance, out_of_range);
  const c10::cuda::CUDAGuard guard(data.device());
  if (debug_checks_enabled()) debug_check_resample_inputs(src_times, src_lengths, a.S, "resample");
  at::Tensor out = at::empty({a.B, a.T, a.D}, data.options());
  at::Tensor valid = at::empty({a.B, a.T}, data.options().dtype(at::kBool));
  if (a.B * a.T == 0) return {out, valid};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, data.scalar_type(), "resample_cuda", [&] {
    ROBOCACHE_DISPATCH_TIME_TYPES(src_times.scalar_type(), "resample_cuda", [&] {
      constexpr int kVec = 16 / sizeof(scalar_t);
      if (a.mode == ResampleMode::Slerp) {
        launch_forward<scalar_t, time_t, 1, true>(
            make_params<scalar_t, time_t>(data, src_times, tgt_times, src_lengths, a, 4), a.B, out, valid);
        return;
      }
      const bool wide = data.stride(2) == 1 &&
                        pick_vector_width<scalar_t>(data.const_data_ptr(), a.D, {data.stride(0), data.stride(1)}) ==
                            kVec;
      if (wide) {
        launch_forward<scalar_t, time_t, kVec, false>(
            make_params<scalar_t, time_t>(data, src_times, tgt_times, src_lengths, a, kVec), a.B, out, valid);
      } else {
        launch_forward<scalar_t, time_t, 1, false>(
            make_params<scalar_t, time_t>(data, src_times, tgt_times, src_lengths, a, 1), a.B, out, valid);
      }
    });
  });
  return {out, valid};
}

// ---- backward --------------------------------------------------------------------------------------------

template <typename scalar_t, typename time_t, typename grad_time_t>
__global__ void __launch_bounds__(kThreads) resample_backward_kernel(
    const ResampleParams<scalar_t, time_t> p, const scalar_t* __restrict__ grad_out,
    at::opmath_type<scalar_t>* __restrict__ grad_data, grad_time_t* __restrict__ grad_tgt) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ int32_t s_left[kMaxTile], s_right[kMaxTile], s_slope_lo[kMaxTile], s_slope_hi[kMaxTile];
  __shared__ acc_t s_weight[kMaxTile], s_dot[kMaxTile];
  __shared__ double s_slope_scale[kMaxTile];
  __shared__ TargetKind s_kind[kMaxTile];
  extern __shared__ __align__(16) unsigned char s_times_raw[];

  const int64_t b = blockIdx.x / p.tiles_per_row;
  const int64_t t0 = (blockIdx.x - b * p.tiles_per_row) * p.tile_t;
  const int count = static_cast<int>(min(static_cast<int64_t>(p.tile_t), p.T - t0));
  const int64_t L = row_length(p, b);
  const TimeRow<time_t> times =
      row_times(p.src + b * p.src_sb, p.src_ss, L, p.stage_times, reinterpret_cast<time_t*>(s_times_raw));

  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const TargetPlan plan = plan_target(p, times, L, b, t0 + i);
    s_left[i] = static_cast<int32_t>(plan.left);
    s_right[i] = static_cast<int32_t>(plan.right);
    s_weight[i] = plan.kind == TargetKind::Lerp ? static_cast<acc_t>(plan.weight) : acc_t(0);
    s_kind[i] = plan.kind;
    const bool has_slope = plan.kind == TargetKind::Copy || plan.kind == TargetKind::Lerp;
    s_slope_lo[i] = static_cast<int32_t>(plan.slope_lo);
    s_slope_hi[i] = static_cast<int32_t>(plan.slope_hi);
    s_slope_scale[i] = has_slope ? plan.slope_scale : 0.0;
    s_dot[i] = acc_t(0);
  }
  __syncthreads();

  const scalar_t* rows = p.data + b * p.data_sb;
  const int64_t items = count * p.D;
  for (int64_t item = threadIdx.x; item < items; item += blockDim.x) {
    const int i = static_cast<int>(item / p.D);
    const int64_t d = item - i * p.D;
    const TargetKind kind = s_kind[i];
    if (kind != TargetKind::Copy && kind != TargetKind::Lerp) continue;
    const acc_t g = static_cast<acc_t>(grad_out[(b * p.T + t0 + i) * p.D + d]);
    if (grad_data != nullptr) {
      const acc_t w = s_weight[i];
      atomicAdd(grad_data + (b * p.S + s_left[i]) * p.D + d, (acc_t(1) - w) * g);
      if (kind == TargetKind::Lerp) atomicAdd(grad_data + (b * p.S + s_right[i]) * p.D + d, w * g);
    }
    if (grad_tgt != nullptr && s_slope_scale[i] != 0.0) {
      const acc_t rise = static_cast<acc_t>(rows[s_slope_hi[i] * p.data_ss + d * p.data_sd]) -
                         static_cast<acc_t>(rows[s_slope_lo[i] * p.data_ss + d * p.data_sd]);
      atomicAdd(&s_dot[i], g * rise);
    }
  }
  if (grad_tgt == nullptr) return;
  __syncthreads();
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    grad_tgt[b * p.T + t0 + i] = static_cast<grad_time_t>(static_cast<double>(s_dot[i]) * s_slope_scale[i]);
  }
}

std::tuple<at::Tensor, at::Tensor> resample_backward_cuda(const at::Tensor& grad_out, const at::Tensor& data,
                                                          const at::Tensor& src_times, const at::Tensor& tgt_times,
                                                          c10::string_view mode,
                                                          const std::optional<at::Tensor>& src_lengths,
                                                          c10::string_view out_of_range,
                                                          std::array<bool, 2> output_mask) {
  const ResampleArgs a =
      check_resample_args(data, src_times, tgt_times, mode, src_lengths, std::nullopt, out_of_range);
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef({a.B, a.T, a.D}),
                    "_resample_backward: expected grad_out of shape [", a.B, ", ", a.T, ", ", a.D, "], got ",
                    shape_str(grad_out));
  check_same_device(grad_out, data, "_resample_backward", "grad_out", "data");
  const c10::cuda::CUDAGuard guard(data.device());
  if (output_mask[0]) at::globalContext().alertNotDeterministic("_resample_backward (CUDA, gradient of data)");
  const at::Tensor g = grad_out.to(data.scalar_type()).contiguous();
  const auto acc_dtype = data.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_data_acc, grad_tgt;
  if (output_mask[0]) grad_data_acc = at::zeros({a.B, a.S, a.D}, data.options().dtype(acc_dtype));
  if (output_mask[1]) {
    TORCH_CHECK_TYPE(tgt_times.is_floating_point(), "_resample_backward: a gradient for tgt_times needs float times");
    grad_tgt = at::empty({a.B, a.T}, tgt_times.options());
  }
  if (a.B * a.T > 0 && (output_mask[0] || output_mask[1])) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, data.scalar_type(), "resample_backward_cuda", [&] {
      ROBOCACHE_DISPATCH_TIME_TYPES(src_times.scalar_type(), "resample_backward_cuda", [&] {
        using grad_time_t = std::conditional_t<std::is_same_v<time_t, double>, double, float>;
        const auto p = make_params<scalar_t, time_t>(data, src_times, tgt_times, src_lengths, a, 1);
        const int64_t blocks = a.B * p.tiles_per_row;
        const size_t shared = p.stage_times ? p.S * sizeof(time_t) : 0;
        resample_backward_kernel<scalar_t, time_t, grad_time_t>
            <<<blocks, kThreads, shared, c10::cuda::getCurrentCUDAStream()>>>(
                p, g.const_data_ptr<scalar_t>(),
                output_mask[0] ? grad_data_acc.mutable_data_ptr<at::opmath_type<scalar_t>>() : nullptr,
                output_mask[1] ? grad_tgt.mutable_data_ptr<grad_time_t>() : nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  at::Tensor grad_data = output_mask[0] ? grad_data_acc.to(data.scalar_type()) : empty_unwanted_grad(data);
  if (!output_mask[1]) {
    grad_tgt = empty_unwanted_grad(tgt_times);
  } else if (tgt_times.dim() == 1) {
    grad_tgt = grad_tgt.sum(0);
  }
  return {grad_data, grad_tgt};
}

}  // namespace

TORCH_LIBRARY_IMPL(robocache, CUDA, m) {
  m.impl("resample", &resample_cuda);
  m.impl("_resample_backward", &resample_backward_cuda);
}

}  // namespace robocache
