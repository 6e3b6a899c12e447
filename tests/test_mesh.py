"""Mesh topology (faces, ordered rings, spirals, their cache) and the spiral convolutions."""

import numpy as np
import pytest
import torch

from facebench.errors import DataError
from facebench.mesh import MeshTopology, cached_spirals, decimate, ordered_rings, pyramid, read_faces, spirals
from facebench.models.components.spiral import SpiralConv, SpiralConv3D, downsample, upsample


def grid(n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid of vertices, two consistently oriented triangles per cell."""
    index = np.arange(n * n).reshape(n, n)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = index[i, j], index[i, j + 1], index[i + 1, j], index[i + 1, j + 1]
            faces += [(a, b, d), (a, d, c)]
    vertices = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    return np.array(faces), np.concatenate([vertices, np.zeros((n * n, 1))], 1).astype(float)


def test_rings_go_around_each_vertex_in_fan_order():
    faces, vertices = grid()
    rings = ordered_rings(faces, 25)
    assert rings[12] == [6, 7, 13, 18, 17, 11]  # the centre's six neighbours, in one turn
    for a, b in zip(rings[12], rings[12][1:] + rings[12][:1]):  # consecutive neighbours share a triangle with the centre
        assert any({12, a, b} == set(f) for f in faces.tolist())
    assert rings[0] == [1, 6, 5]  # a corner: starts at the boundary edge


def test_spirals_walk_rings_outward_with_dilation():
    faces, vertices = grid()
    assert spirals(faces, vertices, 9)[12].tolist() == [12, 6, 7, 13, 18, 17, 11, 0, 1]
    assert spirals(faces, vertices, 5, dilation=2)[12].tolist() == [12, 7, 18, 11, 1]
    corner = spirals(faces, vertices, 20)[0]  # more than the corner's rings reach: filled with the nearest vertices
    assert len(set(corner.tolist())) == 20 and corner[0] == 0


def test_spirals_are_cached_beside_the_dataset(tmp_path):
    faces, vertices = grid()
    np.save(tmp_path / "faces.npy", faces)
    topology = MeshTopology.read(tmp_path, vertices)
    first = topology.spirals(9)
    (cached,) = (tmp_path / "topology").glob("spirals-*-L9-d1.npy")
    np.save(cached, np.zeros_like(first))  # a changed cache file is what the next call returns: read, not recomputed
    assert (cached_spirals(tmp_path, faces, vertices, 9) == 0).all()


def test_pyramid_keeps_original_vertices_and_upsamples_barycentrically():
    """Decimation by 4 twice on a 30 x 30 grid: each level keeps about a quarter of the previous
    one's vertices (original vertices, at their places), its faces are proper triangles over them,
    and up-sampling reproduces any linear field exactly inside the coarse surface (a barycentric
    combination of one coarse triangle), kept vertices as themselves."""
    faces, vertices = grid(30)
    levels = pyramid(faces, vertices, (4, 4))
    fine = vertices
    for level in levels:
        assert len(fine) / 6 < len(level.kept) < len(fine) / 3 and (np.diff(level.kept) > 0).all()
        assert level.faces.min() == 0 and level.faces.max() == len(level.kept) - 1 and len(np.unique(np.sort(level.faces, 1), axis=0)) == len(level.faces)
        assert level.up_index.shape == level.up_weight.shape == (len(fine), 3) and np.allclose(level.up_weight.sum(1), 1) and (level.up_weight >= 0).all()
        np.testing.assert_array_equal(level.up_index[level.kept, 0], np.arange(len(level.kept)))
        field = fine @ np.array([0.3, -1.2, 0.7]) + 0.5
        coarse = field[level.kept]
        upsampled = (coarse[level.up_index] * level.up_weight).sum(1)
        # The coarse surface covers the grid's interior; the border may be cut (borders are not preserved).
        low, high = fine[:, :2].min(0), fine[:, :2].max(0)
        interior = ((fine[:, :2] > low + 2) & (fine[:, :2] < high - 2)).all(1)
        assert interior.sum() > 0.5 * len(fine)
        np.testing.assert_allclose(upsampled[interior], field[interior], atol=1e-5)
        # The torch gathers give the same values, vertex-first with trailing dimensions.
        x = torch.from_numpy(np.stack([field, 2 * field], 1)).float()[:, None]  # (V, 1, 2)
        down = downsample(x, torch.from_numpy(level.kept))
        up = upsample(down, torch.from_numpy(level.up_index), torch.from_numpy(level.up_weight))
        assert up.shape == x.shape and torch.allclose(up[..., 0, 0], torch.from_numpy(upsampled).float(), atol=1e-5)
        fine = fine[level.kept]
    assert all((a.kept == b.kept).all() and (a.up_weight == b.up_weight).all() for a, b in zip(levels, pyramid(faces, vertices, (4, 4))))  # deterministic
    with pytest.raises(ValueError, match="factor: expected an integer of at least 2"):
        decimate(faces, vertices, 1)


def test_pyramid_is_cached_beside_the_dataset(tmp_path):
    faces, vertices = grid(12)
    np.save(tmp_path / "faces.npy", faces)
    levels = MeshTopology.read(tmp_path, vertices).pyramid((2,))
    (cached,) = (tmp_path / "topology").glob("pyramid-*-2.npz")
    again = MeshTopology.read(tmp_path, vertices).pyramid((2,))
    assert all(np.array_equal(getattr(levels[0], f), getattr(again[0], f)) for f in ("kept", "faces", "up_index", "up_weight"))
    cached.write_bytes(b"")  # a broken cache file is an error that names it, not a silent recompute
    with pytest.raises(DataError, match="pyramid-"):
        MeshTopology.read(tmp_path, vertices).pyramid((2,))


def test_faces_are_read_from_a_template_mesh(tmp_path):
    import trimesh

    faces, vertices = grid()
    (tmp_path / "templates").mkdir()
    trimesh.Trimesh(vertices, faces, process=False).export(tmp_path / "templates" / "FLAME_sample.ply")
    assert (read_faces(tmp_path, 25) == faces).all()
    with pytest.raises(DataError, match="a mesh of 30 vertices"):
        read_faces(tmp_path, 30)
    with pytest.raises(DataError, match="faces.npy"):
        read_faces(tmp_path / "templates", 25)


def naive_spiral_conv(x, spiral, weight, bias, frames=1):
    """Gather then project, frame by frame: the definition (x: (B, T, V, C), the usual layout)."""
    b, t, v, c = x.shape
    out = torch.zeros(b, t, v, weight.shape[0])
    for ti in range(t):
        window = [x[:, ti - k] if ti - k >= 0 else torch.zeros(b, v, c) for k in range(frames)]  # current first
        features = torch.cat(window, -1)  # (B, V, frames*C)
        gathered = features[:, spiral].flatten(-2)  # (B, V, L*frames*C)
        out[:, ti] = gathered @ weight.T + bias
    return out


@pytest.mark.parametrize(("frames", "in_channels", "gathers_input"), [(1, 5, False), (1, 2, True), (3, 5, False)])
def test_spiral_convolutions_equal_their_definition(frames, in_channels, gathers_input):
    """Both orders of the map (a narrow input is gathered first, a wide one projected first) against
    the definition."""
    faces, vertices = grid()
    spiral = torch.from_numpy(spirals(faces, vertices, 4))
    torch.manual_seed(0)
    conv = SpiralConv3D(in_channels, 7, 25, 4, frames) if frames > 1 else SpiralConv(in_channels, 7, 25, 4)
    assert conv.gathers_input == gathers_input
    conv.set_spirals(spiral)
    x = torch.randn(2, 6, 25, in_channels)
    # The same linear map written gather-then-project: columns of W for (position l, frame k, channel c).
    w = conv.weight.permute(2, 0, 1).reshape(7, 4 * frames * in_channels)
    ours = conv(x.permute(2, 0, 1, 3)).permute(1, 2, 0, 3)  # the convolutions are vertex-first
    torch.testing.assert_close(ours, naive_spiral_conv(x, spiral, w, conv.bias, frames), atol=1e-5, rtol=1e-5)


def test_both_orders_of_a_spiral_convolution_give_the_same_values_and_gradients():
    faces, vertices = grid()
    torch.manual_seed(0)
    conv = SpiralConv(2, 7, 25, 4).double()
    conv.set_spirals(torch.from_numpy(spirals(faces, vertices, 4)))
    x = torch.randn(25, 3, 2, dtype=torch.double, requires_grad=True)  # (V, N, C)
    gathered = conv(x)
    conv.gathers_input = False
    projected = conv(x)
    torch.testing.assert_close(gathered, projected)
    weights = torch.randn_like(projected)
    wrt = (x, conv.weight, conv.bias)
    for ours, reference in zip(torch.autograd.grad((gathered * weights).sum(), wrt), torch.autograd.grad((projected * weights).sum(), wrt)):
        torch.testing.assert_close(ours, reference)


def test_spiral_conv_3d_is_causal_and_chunks_give_the_same_values_and_gradients():
    faces, vertices = grid()
    conv = SpiralConv3D(4, 3, 25, 5, frames=3)
    conv.set_spirals(torch.from_numpy(spirals(faces, vertices, 5)))
    x = torch.randn(25, 2, 10, 4, requires_grad=True)  # (V, B, T, C)
    full = conv(x)
    later = x.detach().clone()
    later[:, :, 6:] += 1.0
    assert torch.equal(conv(later)[:, :, :6], full[:, :, :6])  # frames before 6 never see frame 6 onward
    conv.chunk_frames = 4
    chunked = conv(x)
    torch.testing.assert_close(chunked, full)
    grad_full = torch.autograd.grad(full.square().sum(), x)[0]
    grad_chunked = torch.autograd.grad(chunked.square().sum(), x)[0]
    torch.testing.assert_close(grad_chunked, grad_full)


@pytest.mark.parametrize("frames", [1, 3])
def test_spiral_conv_3d_of_a_broadcast_sum_equals_the_convolution_of_the_sum(frames):
    """Mesh Attention's first layer: `of_sum(a, e)` is `conv(a + e)` with the sum broadcast over
    vertices x clips x frames, in values and in every gradient (checked against `forward`, which
    the test above checks against the definition)."""
    faces, vertices = grid()
    torch.manual_seed(0)
    conv = SpiralConv3D(4, 3, 25, 5, frames).double()
    conv.set_spirals(torch.from_numpy(spirals(faces, vertices, 5)))
    per_frame = torch.randn(2, 7, 4, dtype=torch.double, requires_grad=True)  # (B, T, C)
    per_vertex = torch.randn(25, 4, dtype=torch.double, requires_grad=True)  # (V, C)
    summed = conv(per_frame[None] + per_vertex[:, None, None])
    split = conv.of_sum(per_frame, per_vertex)
    torch.testing.assert_close(split, summed)
    weights = torch.randn_like(summed)  # a loss that weighs every output differently
    wrt = (per_frame, per_vertex, conv.weight, conv.bias)
    for ours, reference in zip(torch.autograd.grad((split * weights).sum(), wrt), torch.autograd.grad((summed * weights).sum(), wrt)):
        torch.testing.assert_close(ours, reference)


def test_the_nearest_vertex_fill_is_a_stable_argsort_with_ties():
    """The spirals' fill of vertices with too few reachable neighbours: the nearest vertices not
    already in the spiral, in the order of a stable argsort of the distances (ties by index), found
    without sorting the whole mesh."""
    from facebench.mesh.topology import nearest_outside

    rng = np.random.default_rng(0)
    for _ in range(100):
        vertices = rng.integers(0, 4, size=(int(rng.integers(5, 300)), 3)).astype(float)  # many ties
        v = int(rng.integers(len(vertices)))
        members = {v, *rng.choice(len(vertices), size=int(rng.integers(1, min(len(vertices), 30))), replace=False).tolist()}
        count = int(rng.integers(1, 40))
        order = np.argsort(np.linalg.norm(vertices - vertices[v], axis=1), kind="stable")
        assert nearest_outside(vertices, v, members, count) == [int(u) for u in order if int(u) not in members][:count]
