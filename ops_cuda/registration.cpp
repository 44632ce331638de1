// The op schemas of the robocache namespace, and nothing else.
//
// Kernels register themselves per dispatch key in cpu/ and cuda/; fake kernels live in Python
// (robocache.meta_kernels.<op>), which set_python_module names per op so that a graph loaded without the package
// imported still finds them. The library has no pybind bindings: `torch.ops.load_library(path)` alone
// registers everything, which is what a C++-only AOTInductor runtime needs.

#include <Python.h>
#include <torch/library.h>

extern "C" {
// An empty module, so `import robocache._C` works as well as torch.ops.load_library.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(robocache, m) {
  // resample: returns (out [B,T,D], valid [B,T] bool). See SPEC.md.
  m.set_python_module("robocache.meta_kernels.resample");
  m.def(
      "resample(Tensor data, Tensor src_times, Tensor tgt_times, str mode=\"linear\", "
      "Tensor? src_lengths=None, float? tolerance=None, str out_of_range=\"hold\") -> (Tensor, Tensor)");
  // Returns (grad_data [B,S,D] or [0], grad_tgt_times [B,T] or [0]); output_mask says which are wanted.
  m.def(
      "_resample_backward(Tensor grad_out, Tensor data, Tensor src_times, Tensor tgt_times, str mode, "
      "Tensor? src_lengths, str out_of_range, bool[2] output_mask) -> (Tensor, Tensor)");

  // fuse: K streams resampled onto one timeline; returns (out [B,T,sum D_k], valid [B,T,K] bool). One entry
  // of modes/tolerances/src_lengths per stream; a tolerance < 0 means none (float?[] does not survive
  // torch.export serialization, float[] does). out_dtype=None: the streams' common dtype. It is a dtype
  // name ("float32", "bfloat16", ...), not a ScalarType: torch 2.11's AOTInductor runtime read a
  // ScalarType argument as another dtype (float32 came back float64). See SPEC.md.
  m.set_python_module("robocache.meta_kernels.fuse");
  m.def(
      "fuse(Tensor[] data, Tensor[] times, Tensor tgt_times, str[] modes, float[] tolerances, "
      "Tensor?[] src_lengths, str? out_dtype=None) -> (Tensor, Tensor)");
  // Returns the gradient of every stream's data, in that stream's dtype (zeros for slerp streams).
  m.def(
      "_fuse_backward(Tensor grad_out, Tensor[] data, Tensor[] times, Tensor tgt_times, str[] modes, "
      "Tensor?[] src_lengths) -> Tensor[]");

  // voxelize: batched points [B,N,3] (robocache.voxelize unsqueezes one cloud). Returns count [B,X,Y,Z]
  // int32, occupancy bool, or sum/mean/max [B,X,Y,Z,F] / [B,F,X,Y,Z] in features' dtype. See SPEC.md.
  m.set_python_module("robocache.meta_kernels.voxelize");
  m.def(
      "voxelize(Tensor points, Tensor? features, float[3] grid_min, float[3] voxel_size, int[3] grid_size, "
      "str mode=\"count\", Tensor? lengths=None, bool deterministic=False, bool channels_first=False) -> Tensor");
  // grad_features [B,N,F] for sum/mean/max; `out` is the forward output (needed by max only).
  m.def(
      "_voxelize_backward(Tensor grad_out, Tensor points, Tensor features, Tensor? out, float[3] grid_min, "
      "float[3] voxel_size, int[3] grid_size, str mode, Tensor? lengths, bool channels_first) -> Tensor");
}
