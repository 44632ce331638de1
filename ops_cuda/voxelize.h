// voxelize: the host-side contract and the voxel-index math shared by the CPU and CUDA kernels.
//
// A point p of cloud b lands in voxel i = floor((p - grid_min) / voxel_size) per axis, computed in
// coord_t (float32 for float32/float16/bfloat16 points, float64 for float64 points) with one IEEE
// subtraction and one IEEE division per axis and nothing else (no reciprocal, no FMA, no fast-math), so
// the CPU, the CUDA kernels and the float64 oracle (which does the same float32 arithmetic) put every
// point in the same voxel, bit for bit. Grids are stored x first: voxel (ix, iy, iz) of cloud b has the
// global index g = b*V + (ix*Y + iy)*Z + iz, V = X*Y*Z.
#pragma once

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

#include <array>
#include <cstdint>

#include "checks.h"

namespace robocache {

enum class VoxelMode : int { Count = 0, Occupancy = 1, Sum = 2, Mean = 3, Max = 4 };

inline bool mode_has_features(VoxelMode m) {
  return m == VoxelMode::Sum || m == VoxelMode::Mean || m == VoxelMode::Max;
}

// Per-axis origin, voxel size and the range bound of the grid, in the point's arithmetic type.
// `lim[a]` is dim[a] rounded *up* to coord_t, so for any coord_t t: `t < lim[a]` <=> `floor(t) < dim[a]`
// (no coord_t lies in [dim, lim)); that also keeps t far below 2^63 before it is converted to int64.
template <typename coord_t>
struct VoxelGrid {
  coord_t lo[3];
  coord_t size[3];
  coord_t lim[3];
  int64_t dim[3];
};

// Index of a point inside its cloud's grid, or -1 when it is dropped. NaN fails every comparison and
// +-inf (or any value outside the grid, including ones whose quotient overflows) fails the range test,
// so both are dropped before the float -> int conversion, which is undefined for out-of-range values.
// For t >= 0, truncation is floor. index_t = int32_t is for grids of fewer than 2^31 voxels (the same voxel,
// with cheaper conversions and products on the GPU).
template <typename coord_t, typename index_t = int64_t>
C10_HOST_DEVICE inline index_t voxel_index(coord_t x, coord_t y, coord_t z, const VoxelGrid<coord_t>& g) {
  const coord_t tx = (x - g.lo[0]) / g.size[0];
  const coord_t ty = (y - g.lo[1]) / g.size[1];
  const coord_t tz = (z - g.lo[2]) / g.size[2];
  const bool inside =
      tx >= coord_t(0) && tx < g.lim[0] && ty >= coord_t(0) && ty < g.lim[1] && tz >= coord_t(0) && tz < g.lim[2];
  if (!inside) return -1;
  return (static_cast<index_t>(tx) * static_cast<index_t>(g.dim[1]) + static_cast<index_t>(ty)) *
             static_cast<index_t>(g.dim[2]) +
         static_cast<index_t>(tz);
}

// ---- host side -------------------------------------------------------------------------------------

// Validated sizes and options of one voxelize call (points [B,N,3], features [B,N,F]).
struct VoxelizeArgs {
  int64_t B = 0, N = 0, F = 0;  // F = 0 for count/occupancy
  int64_t dim[3] = {0, 0, 0};
  int64_t V = 0;   // X*Y*Z, voxels per cloud
  int64_t BV = 0;  // B*V
  VoxelMode mode = VoxelMode::Count;
  std::array<double, 3> grid_min{};
  std::array<double, 3> voxel_size{};
  bool channels_first = false;
};

VoxelMode parse_voxel_mode(c10::string_view mode, const char* op);

// All shape/dtype/device/value checks of the forward op. `op` names the op in messages.
VoxelizeArgs check_voxelize_args(const at::Tensor& points, const std::optional<at::Tensor>& features,
                                 at::ArrayRef<double> grid_min, at::ArrayRef<double> voxel_size,
                                 at::IntArrayRef grid_size, c10::string_view mode,
                                 const std::optional<at::Tensor>& lengths, bool channels_first,
                                 const char* op = "voxelize");

// The backward's extra checks: mode is sum/mean/max, grad_out has the forward output's shape, and
// `out` (the forward output, needed by max) is given for max.
void check_voxelize_backward_args(const VoxelizeArgs& a, const at::Tensor& grad_out,
                                  const std::optional<at::Tensor>& out);

// Output shape: [B,X,Y,Z] for count/occupancy, [B,X,Y,Z,F] or [B,F,X,Y,Z] (channels_first) otherwise.
std::vector<int64_t> voxelize_output_shape(const VoxelizeArgs& a);
// dtype: int32 (count), bool (occupancy), features' dtype otherwise.
at::ScalarType voxelize_output_dtype(const VoxelizeArgs& a, const std::optional<at::Tensor>& features);

template <typename coord_t>
VoxelGrid<coord_t> make_voxel_grid(const VoxelizeArgs& a);

// Real length of cloud b: lengths[b] clamped to [0, N] (a negative length is an empty cloud, one past N
// the whole cloud), N without lengths. The kernels apply exactly this rule, so no value is an error.
C10_HOST_DEVICE inline int64_t clamp_length(int64_t len, int64_t N) { return len < 0 ? 0 : (len > N ? N : len); }

// grad_out as a contiguous channels-last [B, X, Y, Z, F] tensor in `dtype` (a copy only where needed).
at::Tensor channels_last_contiguous(const at::Tensor& t, bool channels_first, at::ScalarType dtype);

}  // namespace robocache
