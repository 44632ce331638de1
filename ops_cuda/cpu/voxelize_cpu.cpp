// voxelize on the CPU: deterministic in every mode, whatever the thread count.
//
// 1. In parallel over all B*N points: the global voxel index g = b*V + (ix*Y + iy)*Z + iz of each point
//    (voxel_index, shared with CUDA), or -1 for a dropped point (NaN/inf, outside the grid, past its
//    cloud's length).
// 2. count/occupancy: one pass per cloud, clouds in parallel (their grids are disjoint).
// 3. sum/mean/max: one scatter pass in increasing point index into a float32 (float64 for float64
//    features) accumulator [B*V, F], in parallel over (cloud, block of channels): each task owns its
//    accumulator entries, so there are no atomics and every voxel adds its points in point order -- the
//    same additions in the same order as the CUDA deterministic path. A final parallel pass divides
//    (mean), zeroes empty voxels and writes the output dtype and layout ([B,X,Y,Z,F] or [B,F,X,Y,Z]).
// The backward is a gather (sum/mean) or a gather through the lowest-index arg-max (max).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "voxelize.h"

namespace robocache {
namespace {

std::vector<int64_t> cloud_lengths(const std::optional<at::Tensor>& lengths, int64_t B, int64_t N) {
  std::vector<int64_t> L(B, N);
  if (lengths.has_value()) {
    const at::Tensor l = lengths->contiguous();
    const int64_t* p = l.const_data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) L[b] = clamp_length(p[b], N);
  }
  return L;
}

// g[b*N + n]: global voxel index of every point, -1 where dropped.
std::vector<int64_t> point_voxels(const at::Tensor& points, const VoxelizeArgs& a, const std::vector<int64_t>& L) {
  std::vector<int64_t> g(a.B * a.N, -1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, points.scalar_type(), "voxelize_cpu_index", [&] {
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const VoxelGrid<coord_t> grid = make_voxel_grid<coord_t>(a);
    const scalar_t* p = points.const_data_ptr<scalar_t>();
    const int64_t sb = points.stride(0), sn = points.stride(1), sc = points.stride(2);
    const int64_t N = a.N, V = a.V;
    at::parallel_for(0, a.B * N, 4096, [&](int64_t begin, int64_t end) {
      int64_t b = begin / N, n = begin - b * N;  // one division per chunk, then counters
      for (int64_t i = begin; i < end; ++i, ++n) {
        if (n == N) n = 0, ++b;
        if (n >= L[b]) continue;
        const scalar_t* q = p + b * sb + n * sn;
        const int64_t v = voxel_index<coord_t>(static_cast<coord_t>(q[0]), static_cast<coord_t>(q[sc]),
                                               static_cast<coord_t>(q[2 * sc]), grid);
        if (v >= 0) g[i] = b * V + v;
      }
    });
  });
  return g;
}

// Address of output element (voxel g, channel c) in [B,X,Y,Z,F] or [B,F,X,Y,Z].
inline int64_t feature_out_offset(int64_t g, int64_t c, int64_t V, int64_t F, bool channels_first) {
  if (!channels_first) return g * F + c;
  const int64_t b = g / V;
  return (b * F + c) * V + (g - b * V);
}

template <typename scalar_t>
void reduce_features(const at::Tensor& features, const VoxelizeArgs& a, const std::vector<int64_t>& g,
                     at::Tensor& out) {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* f = features.const_data_ptr<scalar_t>();
  const int64_t fb = features.stride(0), fn = features.stride(1), fc = features.stride(2);
  const int64_t N = a.N, V = a.V, F = a.F;
  const VoxelMode mode = a.mode;
  const acc_t init = mode == VoxelMode::Max ? -std::numeric_limits<acc_t>::infinity() : acc_t(0);
  // float32/float64 channels-last output is its own accumulator; otherwise a float32 [B*V, F] buffer.
  const bool in_place = std::is_same_v<acc_t, scalar_t> && !a.channels_first;
  at::Tensor acc_t_buf = in_place
                             ? out.fill_(init)
                             : at::full({a.BV, F}, init, out.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  acc_t* acc = acc_t_buf.mutable_data_ptr<acc_t>();
  // Points per voxel: mean divides by it, max zeroes empty voxels; sum needs none (empty stays 0).
  const bool counted = mode != VoxelMode::Sum;
  at::Tensor count_t = counted ? at::zeros({a.BV}, out.options().dtype(at::kLong)) : at::Tensor();
  int64_t* count = counted ? count_t.mutable_data_ptr<int64_t>() : nullptr;

  // Tasks (cloud b, channels [c0, c0 + kBlock)): disjoint accumulator entries; the c0 == 0 task counts.
  constexpr int64_t kBlock = 4;
  const int64_t blocks = (F + kBlock - 1) / kBlock;
  at::parallel_for(0, a.B * blocks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / blocks, c0 = (t - b * blocks) * kBlock, nc = std::min(kBlock, F - c0);
      const scalar_t* fcloud = f + b * fb + c0 * fc;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t v = g[b * N + n];
        if (v < 0) continue;
        if (counted && c0 == 0) ++count[v];
        const scalar_t* row = fcloud + n * fn;
        acc_t* dst = acc + v * F + c0;
        for (int64_t c = 0; c < nc; ++c) {
          const acc_t x = static_cast<acc_t>(row[c * fc]);
          if (mode == VoxelMode::Max) {
            // NaN is sticky: once dst is NaN no comparison replaces it.
            if (!std::isnan(dst[c]) && (x > dst[c] || std::isnan(x))) dst[c] = x;
          } else {
            dst[c] += x;
          }
        }
      }
    }
  });

  // Finish: divide (mean), zero empty voxels (max), and write the output dtype and layout.
  if (in_place && mode == VoxelMode::Sum) return;
  scalar_t* o = out.mutable_data_ptr<scalar_t>();
  const bool cf = a.channels_first;
  at::parallel_for(0, a.BV, std::max<int64_t>(1, at::internal::GRAIN_SIZE / (F + 1)), [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      const int64_t n = counted ? count[v] : 1;
      if (in_place && mode == VoxelMode::Max && n > 0) continue;  // already final
      for (int64_t c = 0; c < F; ++c) {
        acc_t r = acc[v * F + c];
        if (n == 0) {
          r = acc_t(0);  // empty voxel
        } else if (mode == VoxelMode::Mean) {
          r = r / static_cast<acc_t>(n);
        }
        o[feature_out_offset(v, c, V, F, cf)] = static_cast<scalar_t>(r);
      }
    }
  });
}

at::Tensor voxelize_cpu(const at::Tensor& points, const std::optional<at::Tensor>& features,
                        at::ArrayRef<double> grid_min, at::ArrayRef<double> voxel_size, at::IntArrayRef grid_size,
                        c10::string_view mode, const std::optional<at::Tensor>& lengths, bool deterministic,
                        bool channels_first) {
  (void)deterministic;  // every CPU path is deterministic
  const VoxelizeArgs a =
      check_voxelize_args(points, features, grid_min, voxel_size, grid_size, mode, lengths, channels_first);
  const auto opts = points.options().dtype(voxelize_output_dtype(a, features));
  const std::vector<int64_t> shape = voxelize_output_shape(a);
  const bool has_features = mode_has_features(a.mode);
  if (a.B * a.N == 0 || (has_features && a.F == 0)) return at::zeros(shape, opts);

  const std::vector<int64_t> L = cloud_lengths(lengths, a.B, a.N);
  const std::vector<int64_t> g = point_voxels(points, a, L);

  if (!has_features) {
    at::Tensor out = at::zeros(shape, opts);
    const int64_t N = a.N;
    // Clouds in parallel: each writes only its own grid.
    if (a.mode == VoxelMode::Count) {
      int32_t* o = out.mutable_data_ptr<int32_t>();
      at::parallel_for(0, a.B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0 * N; i < b1 * N; ++i) {
          if (g[i] >= 0) ++o[g[i]];
        }
      });
    } else {
      bool* o = out.mutable_data_ptr<bool>();
      at::parallel_for(0, a.B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0 * N; i < b1 * N; ++i) {
          if (g[i] >= 0) o[g[i]] = true;
        }
      });
    }
    return out;
  }

  at::Tensor out = at::empty(shape, opts);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features->scalar_type(), "voxelize_cpu",
                                  [&] { reduce_features<scalar_t>(*features, a, g, out); });
  return out;
}

// grad_features[b, n, c] = grad_out[g, c] (sum), grad_out[g, c] / count[g] (mean), or grad_out[g, c] where
// point n is the lowest-index point holding the maximum of channel c in voxel g (max); 0 for dropped points.
template <typename scalar_t>
void voxelize_backward_impl(const at::Tensor& grad_out_cl, const at::Tensor& features, const at::Tensor& out_cl,
                            const VoxelizeArgs& a, const std::vector<int64_t>& g, at::Tensor& grad_features) {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* go = grad_out_cl.const_data_ptr<scalar_t>();  // [BV, F] contiguous
  scalar_t* gf = grad_features.mutable_data_ptr<scalar_t>();    // [B, N, F] contiguous
  const int64_t M = a.B * a.N, F = a.F;

  std::vector<int64_t> count;
  std::vector<int64_t> arg;  // max: flat index of the point that gets the gradient, per (voxel, channel)
  if (a.mode == VoxelMode::Mean) {
    count.assign(a.BV, 0);
    for (const int64_t v : g) {
      if (v >= 0) ++count[v];
    }
  } else if (a.mode == VoxelMode::Max) {
    const scalar_t* f = features.const_data_ptr<scalar_t>();
    const int64_t fb = features.stride(0), fn = features.stride(1), fc = features.stride(2);
    const scalar_t* o = out_cl.const_data_ptr<scalar_t>();
    arg.assign(a.BV * F, -1);
    // Clouds in parallel (disjoint grids); increasing point index within a cloud, so the first match
    // is the lowest index.
    at::parallel_for(0, a.B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        for (int64_t n = 0; n < a.N; ++n) {
          const int64_t i = b * a.N + n;
          if (g[i] < 0) continue;
          const scalar_t* row = f + b * fb + n * fn;
          for (int64_t c = 0; c < F; ++c) {
            const int64_t k = g[i] * F + c;
            if (arg[k] >= 0) continue;
            const acc_t x = static_cast<acc_t>(row[c * fc]), m = static_cast<acc_t>(o[k]);
            if (x == m || (std::isnan(x) && std::isnan(m))) arg[k] = i;
          }
        }
      }
    });
  }
  at::parallel_for(0, M, std::max<int64_t>(1, at::internal::GRAIN_SIZE / (F + 1)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      scalar_t* row = gf + i * F;
      const int64_t v = g[i];
      for (int64_t c = 0; c < F; ++c) {
        acc_t r = acc_t(0);
        if (v >= 0) {
          const int64_t k = v * F + c;
          if (a.mode == VoxelMode::Sum) {
            r = static_cast<acc_t>(go[k]);
          } else if (a.mode == VoxelMode::Mean) {
            r = static_cast<acc_t>(go[k]) / static_cast<acc_t>(count[v]);
          } else if (arg[k] == i) {
            r = static_cast<acc_t>(go[k]);
          }
        }
        row[c] = static_cast<scalar_t>(r);
      }
    }
  });
}

at::Tensor voxelize_backward_cpu(const at::Tensor& grad_out, const at::Tensor& points, const at::Tensor& features,
                                 const std::optional<at::Tensor>& out, at::ArrayRef<double> grid_min,
                                 at::ArrayRef<double> voxel_size, at::IntArrayRef grid_size, c10::string_view mode,
                                 const std::optional<at::Tensor>& lengths, bool channels_first) {
  const VoxelizeArgs a = check_voxelize_args(points, features, grid_min, voxel_size, grid_size, mode, lengths,
                                             channels_first, "_voxelize_backward");
  check_voxelize_backward_args(a, grad_out, out);
  const at::ScalarType dtype = features.scalar_type();
  at::Tensor grad_features = at::empty({a.B, a.N, a.F}, features.options());
  if (grad_features.numel() == 0) return grad_features;
  const std::vector<int64_t> L = cloud_lengths(lengths, a.B, a.N);
  const std::vector<int64_t> g = point_voxels(points, a, L);
  const at::Tensor go = channels_last_contiguous(grad_out, channels_first, dtype);
  const at::Tensor o = a.mode == VoxelMode::Max ? channels_last_contiguous(*out, channels_first, dtype) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "voxelize_backward_cpu",
                                  [&] { voxelize_backward_impl<scalar_t>(go, features, o, a, g, grad_features); });
  return grad_features;
}

}  // namespace

TORCH_LIBRARY_IMPL(robocache, CPU, m) {
  m.impl("voxelize", &voxelize_cpu);
  m.impl("_voxelize_backward", &voxelize_backward_cpu);
}

}  // namespace robocache
