"""voxelize against its float64 oracle on CPU and CUDA, plus gradients, determinism, errors and composability."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from composability import CHECKS, OpCase, check_cuda_graph, run_check
from helpers import DATA_DTYPES, assert_close_to_ref, cuda_ready, devices, poisoned_outputs

import robocache
from robocache.reference import voxelize_ref

MODES = ["count", "occupancy", "sum", "mean", "max"]
FEATURE_MODES = ["sum", "mean", "max"]

# A non-cubic grid with a voxel size that is not a power of two (faces are not exactly representable),
# and one with power-of-two sizes, where points can sit exactly on voxel faces.
GRID = dict(grid_min=(-2.0, -1.5, -1.0), voxel_size=(0.1, 0.1, 0.1), grid_size=(40, 30, 20))
EXACT_GRID = dict(grid_min=(-4.0, -2.0, -1.0), voxel_size=(0.25, 0.5, 0.125), grid_size=(32, 8, 16))

# CUDA-only tests (the CPU kernel is their reference) skip visibly without a GPU or a CUDA build.
needs_cuda_kernel = pytest.mark.skipif(not cuda_ready("voxelize"), reason="no GPU or no CUDA kernel")

# The fast CUDA sum/mean path warns under torch.use_deterministic_algorithms (poisoned_outputs turns it on).
pytestmark = pytest.mark.filterwarnings("ignore:.*does not have a deterministic implementation:UserWarning")


def make_cloud(B, N, F, grid, dtype, device, seed=0, outside=0.25, faces=0.1, nonfinite=0.02, feature_dtype=None):
    """Points [B,N,3] with about `outside` of them outside the grid, a fraction snapped onto voxel faces
    (lower corner + k * voxel size, the upper face included), a few NaN/inf coordinates; features
    [B,N,F] ~ N(-0.5, 1), so many voxels hold only negative values."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor(grid["grid_min"], dtype=torch.float64)
    size = torch.tensor(grid["voxel_size"], dtype=torch.float64)
    dims = torch.tensor(grid["grid_size"], dtype=torch.float64)
    extent = size * dims
    pad = (1.0 / (1.0 - outside)) ** (1.0 / 3.0) - 1.0  # per-axis growth that leaves `outside` of the volume out
    u = torch.rand(B, N, 3, generator=g, dtype=torch.float64) * (1 + pad) - pad / 2
    pts = lo + u * extent
    snap = torch.rand(B, N, generator=g) < faces
    k = torch.floor(torch.rand(B, N, 3, generator=g, dtype=torch.float64) * (dims + 1))  # 0..dim, dim = upper face
    pts = torch.where(snap[..., None], lo + k * size, pts)
    bad = torch.rand(B, N, generator=g) < nonfinite
    axis = torch.randint(0, 3, (B, N), generator=g)
    kind = torch.randint(0, 3, (B, N), generator=g)
    bad_value = torch.tensor([float("nan"), float("inf"), float("-inf")], dtype=torch.float64)[kind]
    onehot = torch.nn.functional.one_hot(axis, 3).bool() & bad[..., None]
    pts = torch.where(onehot, bad_value[..., None].expand(B, N, 3), pts)
    feats = torch.randn(B, N, F, generator=g, dtype=torch.float64) - 0.5
    return pts.to(device=device, dtype=dtype), feats.to(device=device, dtype=feature_dtype or dtype)


def run_both(points, features, **kw):
    with poisoned_outputs():
        out = robocache.voxelize(points, features, **kw)
    kw.pop("deterministic", None)
    if kw.get("lengths") is not None:
        kw["lengths"] = kw["lengths"].cpu()
    ref = voxelize_ref(points.cpu(), features.cpu() if features is not None else None, **kw)
    return out, ref


def check_against_ref(out, ref, mode, dtype):
    assert out.shape == ref.shape
    if mode in ("count", "occupancy"):
        assert out.dtype == (torch.int32 if mode == "count" else torch.bool)
        assert torch.equal(out.cpu(), ref)
    elif mode == "max":  # the maximum is one of the inputs: exact in every dtype
        assert out.dtype == dtype
        torch.testing.assert_close(out.cpu().double(), ref, rtol=0, atol=0, equal_nan=True)
    else:
        assert out.dtype == dtype
        assert_close_to_ref(out, ref, dtype)


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("dtype", DATA_DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_correctness(mode, dtype, deterministic, device):
    """Ragged batch (a full cloud, an empty one, a 1-point one, a partial one), ~25% outside, points on faces,
    NaN/inf coordinates, negative features, a NaN feature, odd N and F, a 40x30x20 grid."""
    B, N, F = 4, 1531, 5
    points, features = make_cloud(B, N, F, GRID, dtype, device, seed=MODES.index(mode) * 7 + DATA_DTYPES.index(dtype))
    features[0, 3] = float("nan")  # its voxel (if the point is inside) becomes NaN in sum/mean/max
    lengths = torch.tensor([N, 0, 1, 777], device=device)
    out, ref = run_both(points, features, **GRID, mode=mode, lengths=lengths, deterministic=deterministic)
    assert out.device.type == device
    check_against_ref(out, ref, mode, dtype)
    if mode == "count":
        assert ref.sum() > 0.6 * (N + 1 + 777) * 0.75 and ref[1].sum() == 0


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_points_on_faces(dtype, device):
    """Points exactly on voxel faces go to the voxel above; the grid's upper faces are outside."""
    lo, size, dims = EXACT_GRID["grid_min"], EXACT_GRID["voxel_size"], EXACT_GRID["grid_size"]

    def at(kx, ky, kz, eps=0.0):
        return [lo[0] + kx * size[0] + eps, lo[1] + ky * size[1], lo[2] + kz * size[2]]

    pts = torch.tensor(
        [
            at(0, 0, 0),  # the grid's lower corner -> voxel (0, 0, 0)
            at(3, 5, 7),  # an interior corner -> voxel (3, 5, 7)
            at(3, 5, 7, eps=-0.05),  # just below it in x (0.05: representable in bfloat16 too) -> voxel (2, 5, 7)
            at(dims[0], 0, 0),  # upper x face -> dropped
            at(0, dims[1], 0),  # upper y face -> dropped
            at(dims[0] - 1, dims[1] - 1, dims[2] - 1),  # last voxel
            at(0, 0, 0, eps=-0.05),  # just below the lower corner -> dropped
        ],
        dtype=torch.float64,
    ).to(device=device, dtype=dtype)
    count = robocache.voxelize(pts, **EXACT_GRID, mode="count").cpu()
    expect = torch.zeros(dims, dtype=torch.int32)
    for v in [(0, 0, 0), (3, 5, 7), (2, 5, 7), (dims[0] - 1, dims[1] - 1, dims[2] - 1)]:
        expect[v] += 1
    assert torch.equal(count, expect)
    assert torch.equal(count, voxelize_ref(pts.cpu(), **EXACT_GRID, mode="count"))


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["expanded", "noncontiguous", "channels_first", "exact_grid"])
def test_layouts(layout, mode, device):
    B, N, F = 3, 613, 12
    grid = EXACT_GRID if layout == "exact_grid" else GRID
    points, features = make_cloud(B, N, F, grid, torch.float32, device, seed=5, faces=0.3)
    kw = dict(grid, mode=mode)
    if layout == "expanded":  # stride-0 batch for points and features
        points, features = points[:1].expand(B, N, 3), features[:1].expand(B, N, F)
    elif layout == "noncontiguous":  # every dimension strided
        points = torch.cat([points, points], dim=-1)[..., ::2].transpose(0, 1).contiguous().transpose(0, 1)
        features = features.transpose(1, 2).contiguous().transpose(1, 2)[:, :, ::2]
    elif layout == "channels_first":
        kw["channels_first"] = True
    out, ref = run_both(points, features, **kw, deterministic=True)
    check_against_ref(out, ref, mode, torch.float32)
    if layout == "channels_first" and mode in FEATURE_MODES:
        assert out.shape == (B, features.shape[-1], *grid["grid_size"]) and out.is_contiguous()


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("mode", MODES)
def test_unbatched_and_one_point(mode, device):
    points, features = make_cloud(1, 257, 3, GRID, torch.float32, device, seed=9, nonfinite=0.0)
    one = robocache.voxelize(points[0], features[0], **GRID, mode=mode)
    batched = robocache.voxelize(points, features, **GRID, mode=mode)
    assert one.shape == batched.shape[1:]
    assert torch.equal(one, batched[0])
    # a single point, in the grid, as one cloud
    p = torch.tensor([[0.05, 0.02, -0.97]], device=device)
    f = torch.tensor([[-2.5, 1.0, 3.0]], device=device)
    out = robocache.voxelize(p, f, **GRID, mode=mode)
    ref = voxelize_ref(p.cpu(), f.cpu(), **GRID, mode=mode)
    check_against_ref(out, ref, mode, torch.float32)
    assert (out != 0).sum() == (1 if mode in ("count", "occupancy") else 3)


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("empty", ["N", "B", "F", "all_dropped", "lengths_zero"])
def test_empty(empty, mode, device):
    B, N, F = 2, 50, 3
    if empty == "N":
        N = 0
    elif empty == "B":
        B = 0
    elif empty == "F":
        F = 0
    points, features = make_cloud(B, N, F, GRID, torch.float32, device, seed=2)
    kw = dict(GRID, mode=mode)
    if empty == "all_dropped":
        points = points + 100.0
    if empty == "lengths_zero":
        kw["lengths"] = torch.zeros(B, dtype=torch.int64, device=device)
    out, ref = run_both(points, features, **kw)
    X, Y, Z = GRID["grid_size"]
    expect_shape = (B, X, Y, Z) if mode in ("count", "occupancy") else (B, X, Y, Z, F)
    assert out.shape == expect_shape
    if not (empty == "F" and mode in ("count", "occupancy")):  # features do not matter to count/occupancy
        assert not out.any()
    check_against_ref(out, ref, mode, torch.float32)


@pytest.mark.parametrize("device", devices("voxelize"))
def test_lengths_are_clamped(device):
    """lengths outside [0, N] are clamped (negative: empty cloud, past N: the whole cloud), identically on
    every backend; points past a cloud's length never matter, even NaN ones."""
    points, features = make_cloud(3, 100, 2, GRID, torch.float32, device, seed=4)
    lengths = torch.tensor([-5, 1000, 40], device=device)
    out = robocache.voxelize(points, features, **GRID, mode="sum", lengths=lengths, deterministic=True)
    expect = robocache.voxelize(points, features, **GRID, mode="sum", lengths=lengths.clamp(0, 100), deterministic=True)
    assert torch.equal(out, expect)
    poisoned = points.clone()
    poisoned[2, 40:] = float("nan")
    again = robocache.voxelize(poisoned, features, **GRID, mode="sum", lengths=lengths, deterministic=True)
    assert torch.equal(again, out)


# ---- CUDA against CPU -------------------------------------------------------------------------------------


@pytest.mark.cuda
@needs_cuda_kernel
@pytest.mark.parametrize("dtype", DATA_DTYPES)
def test_cuda_matches_cpu_bit_for_bit(dtype):
    """Both backends put every point in the same voxel: the count grids are identical, and the ordered
    (deterministic) sums add the same float32 values in the same order, so they match bit for bit too."""
    points, features = make_cloud(2, 500_000, 4, GRID, dtype, "cpu", seed=11, faces=0.3, feature_dtype=torch.float32)
    lengths = torch.tensor([500_000, 312_345])
    for grid in (GRID, EXACT_GRID):
        cpu = robocache.voxelize(points, **grid, mode="count", lengths=lengths)
        gpu = robocache.voxelize(points.cuda(), **grid, mode="count", lengths=lengths.cuda())
        assert torch.equal(gpu.cpu(), cpu)
        for mode in ("sum", "mean", "max"):
            cpu = robocache.voxelize(points, features, **grid, mode=mode, lengths=lengths, deterministic=True)
            gpu = robocache.voxelize(points.cuda(), features.cuda(), **grid, mode=mode, lengths=lengths.cuda(),
                                     deterministic=True)
            torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0, equal_nan=True)


GRID128 = dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(20 / 128,) * 3, grid_size=(128, 128, 127))
COUNT_PATH_CASES = {
    # name: (grid, B, N, lengths, points dtype, layout, crowd); crowd puts points [0, crowd) of cloud 0 on one spot.
    # count: binned up to 2^24 voxels, else one pass of global atomics. occupancy on sm_90: a cluster of C blocks
    # holds a cloud's bitmask in shared memory, blocks of up to 2^15 words, so up to 2^23 voxels (C <= 8), where
    # the cloud has enough points for the grid to keep half the GPU busy; else as count. (The paths named below are
    # the ones a 132-SM H200/H100 takes.)
    "many_bins": (GRID128, 2, 4_000_001, [4_000_001, 4097], torch.float32, "contiguous", 0),  # occupancy C=2
    "beyond_bins": (dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(20 / 256,) * 3, grid_size=(257, 256, 256)),
                    2, 100_000, [100_000, 55_555], torch.float32, "contiguous", 0),  # one pass for both
    "crowded_voxel": (dict(grid_min=(-1.0, -1.0, -1.0), voxel_size=(0.5, 0.5, 0.5), grid_size=(4, 4, 4)),
                      1, 150_000, None, torch.float32, "contiguous", 70_000),  # occupancy C=1, 2 mask words
    # 6.3M voxels: an occupancy cluster of 6 blocks; float64 points take scalar loads.
    "mask_ranks": (dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(20 / 192, 20 / 128, 20 / 256),
                        grid_size=(192, 128, 256)), 2, 2_000_001, [2_000_001, 3], torch.float64, "contiguous", 0),
    # More clouds than clusters fit on the GPU (one unit per cloud), strided float32 points (scalar loads).
    "many_clouds": (dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(20 / 64,) * 3, grid_size=(64, 64, 63)),
                    300, 1001, "random", torch.float32, "strided", 0),
    # Too few points for the grid: occupancy takes the binned path.
    "sparse_cloud": (GRID128, 3, 300_001, [300_001, 4097, 0], torch.float32, "contiguous", 0),
}


@pytest.mark.cuda
@needs_cuda_kernel
@pytest.mark.parametrize("case", list(COUNT_PATH_CASES))
def test_count_paths_match_cpu(case):
    """count and occupancy on CUDA against the CPU kernel on each of their paths (COUNT_PATH_CASES says which):
    grids of many bins or mask blocks with ragged clouds that end inside a chunk or a unit, an empty cloud, grids
    just past each path's limit, many small clouds, and one voxel holding more points than a 16-bit count (and a
    chunk) can."""
    grid, B, N, lengths, dtype, layout, crowd = COUNT_PATH_CASES[case]
    if lengths == "random":
        lengths = torch.randint(0, N + 1, (B,), generator=torch.Generator().manual_seed(7))
    elif lengths is not None:
        lengths = torch.tensor(lengths)
    points, _ = make_cloud(B, N, 1, grid, dtype, "cpu", seed=5)
    if crowd:
        points[0, :crowd] = torch.tensor([0.1, -0.3, 0.7], dtype=dtype)
    gpu_points = points.cuda()
    if layout == "strided":
        gpu_points = torch.cat([gpu_points, torch.zeros_like(gpu_points[..., :1])], dim=-1)[..., :3]
        assert not gpu_points.is_contiguous()
    for mode in ("count", "occupancy"):
        cpu = robocache.voxelize(points, **grid, mode=mode, lengths=lengths)
        with poisoned_outputs():
            gpu = robocache.voxelize(gpu_points, **grid, mode=mode,
                                     lengths=None if lengths is None else lengths.cuda())
        assert torch.equal(gpu.cpu(), cpu)
        if mode == "count" and crowd:
            assert cpu.max() > crowd
        elif mode == "count":
            assert cpu.sum() > 0.5 * (lengths.sum() if lengths is not None else B * N)
        else:
            assert cpu.any()


@pytest.mark.cuda
@needs_cuda_kernel
def test_occupancy_mask_block_sizes_in_turn():
    """Occupancy masks of 128 KB per block (128 x 128 x 127, two blocks), then 64 KB (80^3, one block), then 128 KB
    again in one process, each with enough points to take the cluster path: the kernel's shared-memory limit must
    stay large enough for every shape, whichever was asked for first."""
    g = torch.Generator().manual_seed(11)
    small = dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(0.25,) * 3, grid_size=(80, 80, 80))
    for grid, N in ((GRID128, 6_000_000), (small, 4_000_000), (GRID128, 6_000_000)):
        points = torch.rand(1, N, 3, generator=g) * 22 - 11
        cpu = robocache.voxelize(points, **grid, mode="occupancy")
        with poisoned_outputs():
            gpu = robocache.voxelize(points.cuda(), **grid, mode="occupancy")
        assert torch.equal(gpu.cpu(), cpu) and cpu.any()


@pytest.mark.cuda
@needs_cuda_kernel
def test_occupancy_mask_in_cuda_graph():
    """The occupancy cluster launch (6M points into 128 x 128 x 127: two blocks per cloud mask) captured in a CUDA
    graph and replayed on new points copied into the captured input matches eager calls."""

    seeds = itertools.count()

    def make(batch, device):  # fresh points on every call
        points, _ = make_cloud(1, 6_000_000, 1, GRID128, torch.float32, "cpu", seed=next(seeds))
        return (points.to(device),)

    case = OpCase(name="voxelize", op=torch.ops.robocache.voxelize.default,
                  fn=lambda p: robocache.voxelize(p, **GRID128, mode="occupancy"), make_inputs=make,
                  op_args=lambda x: ((x[0],), {}), batch_dims=(0,))
    check_cuda_graph(case)


GRID64 = dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(20 / 64,) * 3, grid_size=(64, 64, 64))
FEATURE_PATH_CASES = {
    # name: (grid, B, N, lengths, F, feature dtype, layout, crowds); crowds: (first, end, xyz) puts points
    # [first, end) of cloud 0 on one spot. Binned unless the comment says otherwise: sum/mean sort each part of a
    # bin by voxel in shared memory (voxelize_bin_rows_kernel), max takes shared-memory maxima (voxelize_bin_max_kernel).
    "many_bins_f8": (dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(20 / 64,) * 3, grid_size=(64, 64, 63)),
                     3, 100_001, [100_001, 4097, 0], 8, torch.float32, "contiguous", []),  # 16-byte row pieces
    "channels_first": (GRID, 2, 50_003, [50_003, 123], 8, torch.float32, "channels_first", []),
    "bf16_rows": (GRID, 2, 50_003, [50_003, 40_000], 16, torch.bfloat16, "contiguous", []),
    "half_rows": (GRID, 1, 50_003, None, 8, torch.float16, "contiguous", []),
    "float64_rows": (GRID, 2, 30_001, [30_001, 5], 8, torch.float64, "contiguous", []),
    "strided_rows": (GRID, 2, 30_001, None, 5, torch.float32, "strided", []),  # element by element
    "float64_odd": (GRID, 1, 30_001, None, 3, torch.float64, "contiguous", []),
    "wide_rows": (GRID, 2, 30_001, [30_001, 777], 24, torch.float32, "contiguous", []),  # keys + radix sort
    "beyond_bins": (dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=(20 / 256,) * 3, grid_size=(257, 256, 256)),
                    1, 100_000, None, 2, torch.float32, "contiguous", []),  # keys + radix sort
    # Two neighbouring voxels of one warp with more than 32 points each: sum/mean reduce them with the whole warp.
    "crowded_in_list": (GRID64, 2, 60_001, [60_001, 333], 8, torch.float32, "contiguous",
                        [(0, 500, (0.1, -0.3, 0.7)), (500, 540, (0.1, -0.3, 0.4))]),
    "crowded_in_list_cf": (GRID64, 1, 60_001, None, 6, torch.float32, "channels_first",
                           [(100, 1100, (-3.0, 2.0, 5.0))]),  # 3 pieces on 4 lanes
    # More points in one part than its sorted list holds: sum/mean accumulate that part with shared-memory atomics.
    "dense_part": (GRID64, 1, 60_000, None, 4, torch.float32, "channels_first", [(0, 20_000, (0.1, -0.3, 0.7))]),
    # 150K points into 64 voxels: too dense for the sorted lists, sum/mean take keys + radix sort.
    "crowded_voxel": (dict(grid_min=(-1.0, -1.0, -1.0), voxel_size=(0.5, 0.5, 0.5), grid_size=(4, 4, 4)),
                      1, 150_000, None, 4, torch.float64, "contiguous", [(0, 70_000, (0.1, -0.3, 0.7))]),
}


@pytest.mark.cuda
@needs_cuda_kernel
@pytest.mark.parametrize("case", list(FEATURE_PATH_CASES))
def test_feature_paths_match_reference(case):
    """Fast (deterministic=False) sum/mean/max on CUDA, each path against the float64 oracle: binned (grids of up
    to 2048 bins of 8192 voxels, rows of up to 16 float32 or 8 float64 channels read in 16-byte pieces or element
    by element; crowded voxels; a part too dense for its list) or keys + radix sort + tile reduction (wider rows,
    larger grids, dense clouds): ragged clouds that end inside a chunk, an empty cloud, every feature dtype, both
    output layouts, strided rows, one voxel holding more points than a chunk."""
    grid, B, N, lengths, F, dtype, layout, crowds = FEATURE_PATH_CASES[case]
    points, features = make_cloud(B, N, F, grid, torch.float32, "cpu", seed=11, feature_dtype=dtype)
    for first, end, xyz in crowds:
        points[0, first:end] = torch.tensor(xyz)
    lengths = None if lengths is None else torch.tensor(lengths)
    points, features = points.cuda(), features.cuda()
    if layout == "strided":  # rows 2F apart, channels 2 apart
        features = torch.cat([features, features], dim=-1).transpose(1, 2).contiguous().transpose(1, 2)[:, :, ::2]
        assert features.stride(-1) != 1
    kw = dict(grid, lengths=None if lengths is None else lengths.cuda(), channels_first=layout == "channels_first")
    for mode in FEATURE_MODES:
        out, ref = run_both(points, features, **kw, mode=mode, deterministic=False)
        check_against_ref(out, ref, mode, dtype)
        assert (ref != 0).sum() > 0.5 * min(ref.numel(), (N if lengths is None else lengths.sum().item()))
    if crowds:  # each crowd really is in one voxel of the grid
        counts = robocache.voxelize(points, **grid, mode="count").cpu()
        for first, end, xyz in crowds:
            ijk = ((torch.tensor(xyz) - torch.tensor(grid["grid_min"])) / torch.tensor(grid["voxel_size"])).long()
            assert counts[(0, *ijk.tolist())] >= end - first


# ---- determinism ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("mode", MODES)
def test_determinism(mode, device):
    """5 runs on 1M points. Promised bitwise equal: count, occupancy and max always; sum and mean with
    deterministic=True (or torch.use_deterministic_algorithms); every mode on the CPU."""
    grid = dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=20.0 / 64, grid_size=(64, 64, 64))
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(1, 1_000_000, 3, generator=g) * 22 - 11).to(device)
    features = torch.randn(1, 1_000_000, 4, generator=g).to(device)
    settings = [False, True] if mode in ("sum", "mean") else [None]
    for det in settings:
        runs = [robocache.voxelize(points, features, **grid, mode=mode, deterministic=det) for _ in range(5)]
        equal = all(torch.equal(r, runs[0]) for r in runs[1:])
        promised = device == "cpu" or mode not in ("sum", "mean") or det
        if promised:
            assert equal, f"{mode} deterministic={det} on {device} is not bitwise reproducible"
        else:
            print(f"voxelize {mode} deterministic=False on {device}: bitwise equal over 5 runs: {equal}")
    if mode in ("sum", "mean"):  # the global switch selects the reproducible path when deterministic=None
        old = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            a = robocache.voxelize(points, features, **grid, mode=mode)
            b = robocache.voxelize(points, features, **grid, mode=mode, deterministic=True)
        finally:
            torch.use_deterministic_algorithms(old)
        assert torch.equal(a, b)


# ---- gradients -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("channels_first", [False, True])
@pytest.mark.parametrize("mode", FEATURE_MODES)
def test_gradcheck(mode, channels_first, device):
    g = torch.Generator().manual_seed(13)
    grid = dict(grid_min=(0.0, 0.0, 0.0), voxel_size=(1.0, 1.0, 0.5), grid_size=(3, 2, 2))
    span = torch.tensor([3.6, 2.4, 1.2], dtype=torch.float64)  # the grid plus a margin: some points outside
    points = (torch.rand(2, 17, 3, generator=g, dtype=torch.float64) * span - 0.2).to(device)
    features = torch.randn(2, 17, 3, generator=g, dtype=torch.float64).to(device).requires_grad_()
    lengths = torch.tensor([17, 9], device=device)

    def fn(f):
        return robocache.voxelize(points, f, **grid, mode=mode, lengths=lengths, channels_first=channels_first,
                                  deterministic=True)

    torch.autograd.gradcheck(fn, (features,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", devices("voxelize"))
def test_max_gradient_ties_and_negatives(device):
    """All-negative voxels keep their true maximum; a tied maximum sends its gradient to the lowest point
    index; a NaN feature makes its channel NaN."""
    pts = torch.tensor([[0.5, 0.5, 0.5], [0.6, 0.6, 0.6], [0.7, 0.7, 0.7], [1.5, 0.5, 0.5]], device=device)
    feats = torch.tensor([[-3.0, -1.0], [-2.0, -1.0], [-2.0, float("nan")], [-7.0, -8.0]], device=device)
    feats.requires_grad_()
    grid = dict(grid_min=(0.0, 0.0, 0.0), voxel_size=1.0, grid_size=(2, 1, 1))
    out = robocache.voxelize(pts, feats, **grid, mode="max")
    assert out[0, 0, 0, 0].item() == -2.0 and math.isnan(out[0, 0, 0, 1].item())
    assert out[1, 0, 0].tolist() == [-7.0, -8.0]
    out.backward(torch.ones_like(out))
    # channel 0: points 1 and 2 tie at -2 -> point 1; channel 1: the NaN point 2 holds the "maximum"
    assert feats.grad.tolist() == [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]


@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_match_reference(dtype, device):
    points, features = make_cloud(2, 400, 6, GRID, torch.float32, device, seed=21, nonfinite=0.0)
    features = features.to(dtype).requires_grad_()
    w = torch.randn(2, *GRID["grid_size"], 6, generator=torch.Generator().manual_seed(1)).to(device)
    f64 = features.detach().double().requires_grad_()
    for mode in ("sum", "mean"):
        features.grad, f64.grad = None, None
        (robocache.voxelize(points, features, **GRID, mode=mode).float() * w).sum().backward()
        (voxelize_ref(points, f64, **GRID, mode=mode) * w.double()).sum().backward()
        torch.testing.assert_close(features.grad.double(), f64.grad, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("device", devices("voxelize"))
def test_no_gradient_for_points_and_no_double_backward(device):
    points = torch.rand(1, 20, 3, device=device, requires_grad=True)
    features = torch.randn(1, 20, 2, device=device, requires_grad=True)
    grid = dict(grid_min=(0.0, 0.0, 0.0), voxel_size=0.5, grid_size=(2, 2, 2))
    out = robocache.voxelize(points, features, **grid, mode="sum")
    out.sum().backward()
    assert points.grad is None and features.grad is not None
    out = robocache.voxelize(points, features, **grid, mode="mean")
    (grad,) = torch.autograd.grad((out * out).sum(), features, create_graph=True)
    with pytest.raises(Exception, match="voxelize: double backward is not supported"):
        grad.sum().backward()


# ---- bad inputs ------------------------------------------------------------------------------------------


def _bad_cases(device):
    p = torch.rand(2, 5, 3, device=device)
    f = torch.rand(2, 5, 4, device=device)
    other = "meta" if device != "meta" else "cpu"
    f_other = torch.rand(2, 5, 4, device=other)
    g = dict(GRID)

    def grid(**kw):
        return {**g, **kw}

    return [
        ("rank", (torch.rand(5, device=device), None), grid(), ValueError, "points"),
        ("rank4", (torch.rand(2, 5, 3, 1, device=device), None), grid(), ValueError, "points"),
        ("last_dim", (torch.rand(2, 5, 2, device=device), None), grid(), ValueError, "points"),
        ("int_points", (p.long(), None), grid(), TypeError, "points"),
        ("no_features", (p, None), grid(mode="sum"), ValueError, "features"),
        ("features_len", (p, f[:, :4]), grid(mode="mean"), ValueError, "features"),
        ("features_rank", (p, f[0]), grid(mode="max"), ValueError, "features"),
        ("int_features", (p, f.int()), grid(mode="sum"), TypeError, "features"),
        ("features_device", (p, f_other), grid(mode="sum"), ValueError, "features"),
        ("mode", (p, f), grid(mode="median"), ValueError, "mode"),
        ("mode_type", (p, f), grid(mode=3), TypeError, "mode"),
        ("voxel_zero", (p, None), grid(voxel_size=0.0), ValueError, "voxel_size"),
        ("voxel_negative", (p, None), grid(voxel_size=(0.1, -0.1, 0.1)), ValueError, "voxel_size"),
        ("voxel_nan", (p, None), grid(voxel_size=float("nan")), ValueError, "voxel_size"),
        ("voxel_f32_zero", (p, None), grid(voxel_size=1e-50), ValueError, "voxel_size"),
        ("grid_zero", (p, None), grid(grid_size=(40, 0, 20)), ValueError, "grid_size"),
        ("grid_overflow", (p, None), grid(grid_size=(2**40, 2**40, 2)), ValueError, "too many elements"),
        ("grid_min_len", (p, None), grid(grid_min=(0.0, 0.0)), ValueError, "grid_min"),
        ("grid_min_inf", (p, None), grid(grid_min=(0.0, float("inf"), 0.0)), ValueError, "grid_min"),
        ("grid_min_type", (p, None), grid(grid_min="abc"), TypeError, "grid_min"),
        ("grid_size_float", (p, None), grid(grid_size=(4.0, 4, 4)), TypeError, "grid_size"),
        ("lengths_dtype", (p, None), grid(lengths=torch.tensor([5, 5], device=device).int()), TypeError, "lengths"),
        ("lengths_shape", (p, None), grid(lengths=torch.tensor([5], device=device)), ValueError, "lengths"),
        ("lengths_device", (p, None), grid(lengths=torch.tensor([5, 5], device=other)), ValueError, "lengths"),
        ("lengths_unbatched", (p[0], None), grid(lengths=torch.tensor([5], device=device)), ValueError, "lengths"),
        ("points_type", ([[0.0, 0.0, 0.0]], None), grid(), TypeError, "points"),
        ("deterministic_type", (p, None), grid(deterministic="yes"), TypeError, "deterministic"),
    ]


BAD_DEVICES = devices("voxelize") + ["meta"]  # meta runs the fake kernel: same checks, same messages


@pytest.mark.parametrize("device", BAD_DEVICES)
@pytest.mark.parametrize("case", range(len(_bad_cases("cpu"))), ids=[c[0] for c in _bad_cases("cpu")])
def test_bad_inputs(case, device):
    name, args, kwargs, exc, word = _bad_cases(device)[case]
    if device == "meta" and name == "features_device":
        pytest.skip("meta vs meta: no second device here")
    with pytest.raises(exc, match=rf"^voxelize: .*{word}"):
        robocache.voxelize(*args, **kwargs)


@pytest.mark.parametrize("device", BAD_DEVICES)
def test_raw_op_checks(device):
    """The op itself (no Python wrapper) checks list lengths and values with the same messages."""
    p = torch.rand(1, 4, 3, device=device)
    op = torch.ops.robocache.voxelize.default
    with pytest.raises(ValueError, match=r"^voxelize: expected grid_size to have 3 values"):
        op(p, None, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2, 2], "count", None, False, False)
    with pytest.raises(ValueError, match=r"^voxelize: expected voxel_size values that are finite and > 0"):
        op(p, None, [0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [2, 2, 2], "count", None, False, False)
    with pytest.raises(ValueError, match=r"^voxelize: mode='sum' needs features"):
        op(p, None, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2, 2, 2], "sum", None, False, False)


# ---- predecessor name --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", devices("voxelize"))
def test_voxelize_pointcloud(device):
    points, features = make_cloud(1, 3000, 4, dict(grid_min=(-10.0,) * 3, voxel_size=(0.1,) * 3,
                                                   grid_size=(128,) * 3), torch.float32, device, seed=3)
    occ = robocache.voxelize_pointcloud(points[0])
    assert occ.dtype == torch.int32 and occ.shape == (128, 128, 128)
    ref = voxelize_ref(points[0].cpu(), grid_min=(-10, -10, -10), voxel_size=0.1, grid_size=(128, 128, 128),
                       mode="count")
    assert torch.equal(occ.cpu(), (ref > 0).int())
    mx = robocache.voxelize_pointcloud(points, features.half(), mode="max")
    assert mx.dtype == torch.float32 and mx.shape == (1, 128, 128, 128, 4)


# ---- composability ---------------------------------------------------------------------------------------

COMPOSE_GRID = dict(grid_min=(-1.0, -1.0, -0.9), voxel_size=(0.4, 0.5, 0.6), grid_size=(5, 4, 3))


def _make_inputs(batch, device):
    g = torch.Generator().manual_seed(batch)
    points = (torch.rand(batch, 300, 3, generator=g) * 2.2 - 1.1).to(device)
    features = torch.randn(batch, 300, 4, generator=g).to(device)
    lengths = torch.randint(1, 301, (batch,), generator=g).to(device)
    return points, features, lengths


CASE = OpCase(
    name="voxelize",
    op=torch.ops.robocache.voxelize.default,
    fn=lambda p, f, n: robocache.voxelize(p, f, **COMPOSE_GRID, mode="mean", lengths=n, deterministic=True,
                                          channels_first=True),
    make_inputs=_make_inputs,
    op_args=lambda x: (
        (x[0], x[1], list(COMPOSE_GRID["grid_min"]), list(COMPOSE_GRID["voxel_size"]), list(COMPOSE_GRID["grid_size"]),
         "mean", x[2], True, True),
        {},
    ),
    batch_dims=(0, 0, 0),
    grad_inputs=(1,),
)


@pytest.mark.slow
@pytest.mark.parametrize("device", devices("voxelize"))
@pytest.mark.parametrize("check", CHECKS)
def test_composability(check, device, tmp_path):
    run_check(check, CASE, device, tmp_path)
