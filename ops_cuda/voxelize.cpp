// voxelize: argument checks and small host helpers shared by the CPU and CUDA entry points.
#include "voxelize.h"

#include <c10/util/safe_numerics.h>

#include <cmath>
#include <limits>
#include <string>

namespace robocache {

VoxelMode parse_voxel_mode(c10::string_view mode, const char* op) {
  if (mode == "count") return VoxelMode::Count;
  if (mode == "occupancy") return VoxelMode::Occupancy;
  if (mode == "sum") return VoxelMode::Sum;
  if (mode == "mean") return VoxelMode::Mean;
  if (mode == "max") return VoxelMode::Max;
  TORCH_CHECK_VALUE(false, op, ": expected mode to be one of 'count', 'occupancy', 'sum', 'mean', 'max', got '",
                    std::string(mode), "'");
}

VoxelizeArgs check_voxelize_args(const at::Tensor& points, const std::optional<at::Tensor>& features,
                                 at::ArrayRef<double> grid_min, at::ArrayRef<double> voxel_size,
                                 at::IntArrayRef grid_size, c10::string_view mode,
                                 const std::optional<at::Tensor>& lengths, bool channels_first, const char* op) {
  VoxelizeArgs a;
  a.mode = parse_voxel_mode(mode, op);
  a.channels_first = channels_first;
  TORCH_CHECK_VALUE(points.dim() == 3 && points.size(2) == 3, op, ": expected points of shape [B,N,3], got shape ",
                    shape_str(points));
  check_float_dtype(points, op, "points");
  a.B = points.size(0);
  a.N = points.size(1);

  TORCH_CHECK_VALUE(grid_min.size() == 3, op, ": expected grid_min to have 3 values, got ", grid_min.size());
  TORCH_CHECK_VALUE(voxel_size.size() == 3, op, ": expected voxel_size to have 3 values, got ", voxel_size.size());
  TORCH_CHECK_VALUE(grid_size.size() == 3, op, ": expected grid_size to have 3 values, got ", grid_size.size());
  for (int k = 0; k < 3; ++k) {
    TORCH_CHECK_VALUE(std::isfinite(grid_min[k]), op, ": expected finite grid_min values, got ", grid_min);
    TORCH_CHECK_VALUE(std::isfinite(voxel_size[k]) && voxel_size[k] > 0.0, op,
                      ": expected voxel_size values that are finite and > 0, got ", voxel_size);
    TORCH_CHECK_VALUE(grid_size[k] > 0, op, ": expected grid_size values > 0, got ", grid_size);
    a.grid_min[k] = grid_min[k];
    a.voxel_size[k] = voxel_size[k];
    a.dim[k] = grid_size[k];
  }
  if (points.scalar_type() != at::kDouble) {
    // The index math runs in float32: a size that rounds to 0 or inf there is as invalid as 0.
    for (int k = 0; k < 3; ++k) {
      const float s = static_cast<float>(voxel_size[k]);
      TORCH_CHECK_VALUE(s > 0.0f && std::isfinite(s) && std::isfinite(static_cast<float>(grid_min[k])), op,
                        ": grid_min and voxel_size must be finite and voxel_size > 0 in float32 (the arithmetic "
                        "type of ",
                        points.scalar_type(), " points), got grid_min ", grid_min, ", voxel_size ", voxel_size);
    }
  }

  if (mode_has_features(a.mode)) {
    TORCH_CHECK_VALUE(features.has_value(), op, ": mode='", std::string(mode),
                      "' needs features of shape [B,N,F], got None");
    const at::Tensor& f = *features;
    TORCH_CHECK_VALUE(f.dim() == 3, op, ": expected features of shape [B,N,F], got shape ", shape_str(f));
    TORCH_CHECK_VALUE(f.size(0) == a.B && f.size(1) == a.N, op, ": expected features of shape [", a.B, ", ", a.N,
                      ", F] to match points ", shape_str(points), ", got shape ", shape_str(f));
    check_same_device(f, points, op, "features", "points");
    check_float_dtype(f, op, "features");
    a.F = f.size(2);
  }
  if (lengths.has_value()) {
    const at::Tensor& l = *lengths;
    check_same_device(l, points, op, "lengths", "points");
    TORCH_CHECK_TYPE(l.scalar_type() == at::kLong, op, ": expected lengths to be int64, got ", l.scalar_type());
    TORCH_CHECK_VALUE(l.dim() == 1 && l.size(0) == a.B, op, ": expected lengths of shape [", a.B, "], got shape ",
                      shape_str(l));
  }

  // Every element count the kernels form (B*V*max(F,1), plus one sentinel) must fit int64.
  int64_t v = 1;
  bool overflow = false;
  for (int k = 0; k < 3; ++k) overflow |= c10::mul_overflows(v, a.dim[k], &v);
  int64_t bv = 0, total = 0;
  overflow |= c10::mul_overflows(v, std::max<int64_t>(a.B, 1), &bv);
  overflow |= c10::mul_overflows(bv, std::max<int64_t>(a.F, 1), &total);
  overflow |= total == std::numeric_limits<int64_t>::max();
  TORCH_CHECK_VALUE(!overflow, op, ": the output grid has too many elements for int64 (B=", a.B, ", grid_size ",
                    grid_size, ", F=", a.F, ")");
  a.V = v;
  a.BV = v * a.B;
  return a;
}

void check_voxelize_backward_args(const VoxelizeArgs& a, const at::Tensor& grad_out,
                                  const std::optional<at::Tensor>& out) {
  constexpr const char* op = "_voxelize_backward";
  TORCH_CHECK_VALUE(mode_has_features(a.mode), op, ": only modes 'sum', 'mean' and 'max' have a gradient");
  const std::vector<int64_t> shape = voxelize_output_shape(a);
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef(shape), op, ": expected grad_out of shape ", shape, ", got ",
                    shape_str(grad_out));
  if (a.mode == VoxelMode::Max) {
    TORCH_CHECK_VALUE(out.has_value() && out->sizes() == at::IntArrayRef(shape), op,
                      ": mode='max' needs the forward output of shape ", shape);
  }
}

std::vector<int64_t> voxelize_output_shape(const VoxelizeArgs& a) {
  if (!mode_has_features(a.mode)) return {a.B, a.dim[0], a.dim[1], a.dim[2]};
  if (a.channels_first) return {a.B, a.F, a.dim[0], a.dim[1], a.dim[2]};
  return {a.B, a.dim[0], a.dim[1], a.dim[2], a.F};
}

at::ScalarType voxelize_output_dtype(const VoxelizeArgs& a, const std::optional<at::Tensor>& features) {
  if (a.mode == VoxelMode::Count) return at::kInt;
  if (a.mode == VoxelMode::Occupancy) return at::kBool;
  return features->scalar_type();
}

namespace {
// The smallest coord_t >= d.
template <typename coord_t>
coord_t round_up(int64_t d) {
  coord_t f = static_cast<coord_t>(d);
  if (static_cast<long double>(f) < static_cast<long double>(d)) {
    f = std::nextafter(f, std::numeric_limits<coord_t>::infinity());
  }
  return f;
}
}  // namespace

template <typename coord_t>
VoxelGrid<coord_t> make_voxel_grid(const VoxelizeArgs& a) {
  VoxelGrid<coord_t> g;
  for (int k = 0; k < 3; ++k) {
    g.lo[k] = static_cast<coord_t>(a.grid_min[k]);
    g.size[k] = static_cast<coord_t>(a.voxel_size[k]);
    g.lim[k] = round_up<coord_t>(a.dim[k]);
    g.dim[k] = a.dim[k];
  }
  return g;
}

template VoxelGrid<float> make_voxel_grid<float>(const VoxelizeArgs&);
template VoxelGrid<double> make_voxel_grid<double>(const VoxelizeArgs&);

at::Tensor channels_last_contiguous(const at::Tensor& t, bool channels_first, at::ScalarType dtype) {
  at::Tensor x = channels_first ? t.movedim(1, -1) : t;
  return x.to(dtype).contiguous();
}

}  // namespace robocache
