"""The z-buffer renderer against analytic geometry: occlusion, depth, silhouettes, batching, devices."""

import math

import pytest
import torch

from core.cameras import perspective_project
from core.preprocess import SquarePad, canvas_to_pixels
from core.render import (
    PeopleMeshes,
    PinholeCamera,
    RasterSettings,
    RenderSettings,
    ShadingSettings,
    Stripes,
    SurfaceSample,
    canonical_camera,
    canonical_cameras,
    render,
)
from core.render.primitives import box, mannequin, uv_sphere

# A UV sphere of 32 rings x 64 segments is inscribed in its sphere and deviates from it by less
# than r (1 - cos(pi / 32)) ~ 0.5 % of r along the normal; 5 mm covers that at r = 0.5 m off the
# silhouette (rays within 0.9 r of the centre meet the surface at < 65 deg from the normal).
SPHERE_DEPTH_TOL = 5e-3
# Float32 depth of flat faces: relative precision ~1e-7, amplified by the barycentric evaluation.
FLAT_DEPTH_TOL = 1e-4
FLIP = torch.tensor([1.0, -1.0, -1.0])  # Y-up body frame facing +z -> camera frame facing the camera


@pytest.fixture(scope="module")
def sphere():
    return uv_sphere(32, 64)


@pytest.fixture(scope="module")
def body():
    return mannequin(rings=12, segments=16)


def pixel_rays(camera: PinholeCamera) -> torch.Tensor:
    """(H, W, 3) ray directions (z = 1) through the pixel centres of image 0."""
    rows = torch.arange(camera.height, dtype=torch.float64) + 0.5
    cols = torch.arange(camera.width, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    f, (cx, cy) = float(camera.focal[0]), camera.center[0].double()
    return torch.stack([(u - cx) / f, (v - cy) / f, torch.ones_like(u)], dim=-1)


def sphere_hits(rays: torch.Tensor, center: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest ray-sphere depth (z) per ray (inf on a miss) and the ray's distance from the centre / radius."""
    d = rays / rays.norm(dim=-1, keepdim=True)
    c = center.double()
    along = d @ c
    off = (c.norm() ** 2 - along**2).clamp_min(0).sqrt()
    t = along - (radius**2 - off**2).clamp_min(0).sqrt()
    z = torch.where(off <= radius, t * d[..., 2], torch.inf)
    return z, off / radius


def test_near_sphere_occludes_far_one_and_depth_is_analytic(sphere):
    verts, faces = sphere
    camera = canonical_camera(96, 128)
    near_c, far_c = torch.tensor([0.15, 0.0, 3.0]), torch.tensor([-0.35, 0.1, 4.0])
    # The far sphere comes first: order of drawing must not matter, only depth.
    people = torch.stack([verts * 0.5 + far_c, verts * 0.5 + near_c])
    out = render(PeopleMeshes.from_images([people], faces), camera)
    rays = pixel_rays(camera)
    z_far, off_far = sphere_hits(rays, far_c, 0.5)
    z_near, off_near = sphere_hits(rays, near_c, 0.5)
    expected = torch.where(z_near <= z_far, 2, 1)
    expected[torch.isinf(z_near) & torch.isinf(z_far)] = 0
    # Away from the silhouettes (where the inscribed mesh and the sphere differ) ids agree exactly.
    clear = ((off_far < 0.95) | (off_far > 1.0)) & ((off_near < 0.95) | (off_near > 1.0))
    assert torch.equal(out.instance[0][clear], expected[clear])
    assert (expected == 2).sum() > 500 and (expected[clear] == 1).sum() > 200  # both partly visible
    inner = (torch.where(expected == 2, off_near, off_far) < 0.9) & (expected > 0)
    analytic = torch.minimum(z_near, z_far)
    error = (out.depth[0].double() - analytic)[inner].abs()
    assert error.max() < SPHERE_DEPTH_TOL
    assert torch.isinf(out.depth[0][out.instance[0] == 0]).all()


def test_cube_on_the_axis_covers_its_front_face(sphere):
    verts, faces = box((1.0, 1.0, 1.0))
    camera = canonical_camera(120, 160)
    out = render(PeopleMeshes.from_images([(verts + torch.tensor([0.0, 0.0, 5.0])).unsqueeze(0)], faces), camera)
    rays = pixel_rays(camera)
    hit = (rays[..., :2] * 4.5).abs().amax(dim=-1) <= 0.5  # the front face z = 4.5, |x|, |y| <= 0.5
    mask = out.instance[0] > 0
    iou = (mask & hit).sum() / (mask | hit).sum()
    assert iou > 0.99 and hit.sum() > 400
    assert (out.depth[0][mask & hit] - 4.5).abs().max() < FLAT_DEPTH_TOL * 4.5


def test_tilted_plane_depth_and_barycentrics_are_perspective_correct():
    # A quad from z = 2 (bottom) to z = 12 (top): linear-in-screen depth would be off by metres.
    quad = torch.tensor([[-3.0, 1.0, 2.0], [3.0, 1.0, 2.0], [3.0, -4.0, 12.0], [-3.0, -4.0, 12.0]])
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    camera = canonical_camera(64, 64)
    settings = RenderSettings(barycentrics=True)
    out = render(PeopleMeshes.from_images([quad.unsqueeze(0)], faces), camera, settings)
    rays = pixel_rays(camera)
    # Plane through the quad: y = 1 - 0.5 (z - 2)  =>  along a ray (x, y, 1) z: z = 2 / (ry + 0.5).
    analytic = 2.0 / (rays[..., 1] + 0.5)
    mask = out.instance[0] > 0
    assert mask.sum() > 1000
    relative = ((out.depth[0].double() - analytic).abs() / analytic)[mask]
    assert relative.max() < FLAT_DEPTH_TOL
    bary = out.barycentrics[0][mask]
    corner_z = quad[:, 2][faces[out.face[0][mask]]]
    torch.testing.assert_close(bary.sum(dim=1), torch.ones(len(bary)))
    torch.testing.assert_close((bary * corner_z).sum(dim=1), out.depth[0][mask], rtol=FLAT_DEPTH_TOL, atol=0)


def test_mask_contains_visible_projected_joints(body):
    verts, faces, joints = body
    camera = canonical_camera(90, 160)
    shifts = [torch.tensor([-0.7, 0.2, 3.5]), torch.tensor([-0.3, 0.1, 4.5]), torch.tensor([1.9, 0.3, 3.0])]
    people = torch.stack([verts * FLIP + s for s in shifts])  # the third is cut by the right border
    people_joints = torch.stack([joints * FLIP + s for s in shifts])
    out = render(PeopleMeshes.from_images([people], faces), camera)
    uv = camera.project(people_joints)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    assert inside[2].any() and not inside[2].all()  # truncated person
    contained, visible = 0, 0
    for p in range(len(people)):
        others = render(PeopleMeshes.from_images([people[[q for q in range(len(people)) if q != p]]], faces), camera)
        for k in torch.nonzero(inside[p]).squeeze(1):
            r, c = row[p, k], col[p, k]
            if others.depth[0, r, c] > people_joints[p, k, 2]:  # no one else in front of the joint
                visible += 1
                contained += int(out.instance[0, r, c] == p + 1)
    assert visible >= 30
    assert contained / visible >= 0.95


def test_canonical_camera_matches_bev_projection_of_pj2d_org():
    torch.manual_seed(0)
    for height, width in ((480, 640), (700, 300), (512, 512)):
        joints, trans = torch.randn(2, 5, 3) * 0.3, torch.tensor([[0.2, -0.1, 4.0], [-0.5, 0.3, 7.0]])
        pad = SquarePad.of(height, width)
        offsets = torch.tensor([pad.as_offsets()] * 2)
        pj2d = canvas_to_pixels(perspective_project(joints, trans), offsets)
        ours = canonical_camera(height, width).project(joints + trans.unsqueeze(1))
        torch.testing.assert_close(ours, pj2d, atol=1e-3, rtol=0)
        focal = float(canonical_camera(height, width).focal[0])
        assert math.isclose(focal, 443.4 * max(height, width) / 512, rel_tol=1e-6)


def test_batch_equals_one_by_one_and_chunking_changes_nothing(body):
    verts, faces, _ = body
    scenes = [
        torch.stack([verts * FLIP + torch.tensor([0.3, 0.2, 3.0]), verts * FLIP + torch.tensor([-0.2, 0.1, 4.0])]),
        torch.zeros(0, *verts.shape),
        (verts * FLIP + torch.tensor([0.0, 0.3, 2.5])).unsqueeze(0),
    ]
    colors = [torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.9, 0.2]]), torch.zeros(0, 3), torch.tensor([[0.2, 0.2, 0.9]])]
    camera = canonical_cameras([(48, 64)] * 3)
    batched = render(PeopleMeshes.from_images(scenes, faces, colors), camera)
    small = RenderSettings(raster=RasterSettings(max_candidates=500))
    chunked = render(PeopleMeshes.from_images(scenes, faces, colors), camera, small)
    for i, (people, rgb) in enumerate(zip(scenes, colors, strict=True)):
        alone = render(PeopleMeshes.from_images([people], faces, [rgb]), camera.select(i))
        for name in ("color", "depth", "instance", "face"):
            assert torch.equal(getattr(batched, name)[i], getattr(alone, name)[0]), name
    for name in ("color", "depth", "instance", "face"):
        assert torch.equal(getattr(batched, name), getattr(chunked, name)), name
    assert set(batched.instance[0].unique().tolist()) == {0, 1, 2}
    assert (batched.instance[1] == 0).all()


def test_empty_scene_and_meshes_behind_the_camera(sphere):
    verts, faces = sphere
    camera = canonical_cameras([(16, 24)] * 2)
    shading = ShadingSettings(background=(0.1, 0.2, 0.3))
    for scene in ([torch.zeros(0, *verts.shape)] * 2, [(verts * 0.3 - torch.tensor([0.0, 0.0, 2.0]))[None]] * 2):
        out = render(PeopleMeshes.from_images(scene, faces), camera, RenderSettings(shading=shading))
        assert (out.instance == 0).all() and (out.face == -1).all() and torch.isinf(out.depth).all()
        assert torch.equal(out.color, torch.tensor([0.1, 0.2, 0.3]).expand(2, 16, 24, 3))


def test_truncated_person_matches_the_crop_of_a_larger_render(body):
    verts, faces, _ = body
    people = (verts * FLIP + torch.tensor([0.9, 0.4, 3.0])).unsqueeze(0)  # sticks out to the right and down
    small = canonical_camera(60, 80)
    large = PinholeCamera(small.focal, small.center + 20, 100, 140)  # the small image is its crop [20:80, 20:100]
    cut = render(PeopleMeshes.from_images([people], faces), small)
    whole = render(PeopleMeshes.from_images([people], faces), large)
    crop = whole.instance[0, 20:80, 20:100]
    assert (crop > 0).sum() < (whole.instance[0] > 0).sum()  # the person really is truncated
    assert (cut.instance[0] == crop).float().mean() > 0.999
    both = (cut.instance[0] > 0) & (crop > 0)
    torch.testing.assert_close(cut.depth[0][both], whole.depth[0, 20:80, 20:100][both])


def test_back_face_culling_keeps_closed_meshes(sphere):
    verts, faces = sphere
    scene = [torch.stack([verts * 0.5 + torch.tensor([0.0, 0.0, 3.0]), verts * 0.4 + torch.tensor([0.4, 0.0, 3.5])])]
    camera = canonical_camera(64, 64)
    both = render(PeopleMeshes.from_images(scene, faces), camera)
    culled = render(PeopleMeshes.from_images(scene, faces), camera, RenderSettings(raster=RasterSettings(cull="back")))
    inside_out = render(PeopleMeshes.from_images(scene, faces.flip(1)), camera,
                        RenderSettings(raster=RasterSettings(cull="back")))
    assert (both.instance != culled.instance).float().mean() < 0.005
    same = (both.instance > 0) & (both.instance == culled.instance)
    torch.testing.assert_close(both.depth[same], culled.depth[same])
    # Reversed winding: culling now keeps the far hemisphere, so the depth is larger.
    far = (inside_out.instance == both.instance) & (both.instance > 0)
    assert (inside_out.depth[far] > both.depth[far]).all()


def test_pattern_sees_interpolated_attributes_and_lighting_is_lambert():
    quad = torch.tensor([[-1.0, -1.0, 3.0], [1.0, -1.0, 3.0], [1.0, 1.0, 3.0], [-1.0, 1.0, 3.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    attributes = torch.tensor([[[0.0], [1.0], [1.0], [0.0]]])  # = (x + 1) / 2 on the quad
    meshes = PeopleMeshes(quad[None], faces, torch.zeros(1, dtype=torch.long), torch.ones(1, 3), attributes)
    camera = canonical_camera(32, 32)
    seen: list[SurfaceSample] = []

    def ramp(sample: SurfaceSample) -> torch.Tensor:
        seen.append(sample)
        return sample.attributes.expand(-1, 3)

    flat = RenderSettings(shading=ShadingSettings(ambient=1.0, diffuse=0.0))
    out = render(meshes, camera, flat, pattern=ramp)
    mask = out.instance[0] > 0
    assert len(seen) == 1 and len(seen[0].person) == int(mask.sum())
    torch.testing.assert_close(out.color[0][mask][:, 0], (seen[0].points[:, 0] + 1) / 2, atol=1e-5, rtol=0)
    # Light straight from the camera: full ambient + diffuse; from the side: ambient only.
    head_on = ShadingSettings(light_direction=(0.0, 0.0, -1.0), ambient=0.3, diffuse=0.5)
    side = ShadingSettings(light_direction=(1.0, 0.0, 0.0), ambient=0.3, diffuse=0.5)
    lit = render(meshes, camera, RenderSettings(shading=head_on)).color[0][mask]
    grazing = render(meshes, camera, RenderSettings(shading=side)).color[0][mask]
    torch.testing.assert_close(lit, torch.full_like(lit, 0.8))
    torch.testing.assert_close(grazing, torch.full_like(grazing, 0.3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(body):
    verts, faces, _ = body
    pair = [verts * FLIP + torch.tensor([0.3, 0.2, 3.0]), verts * FLIP + torch.tensor([-0.2, 0.1, 4.0])]
    scenes = [torch.stack(pair), (verts * FLIP + torch.tensor([0.0, 0.3, 2.5])).unsqueeze(0)]
    camera = canonical_cameras([(96, 128)] * 2)
    cpu = render(PeopleMeshes.from_images(scenes, faces), camera)
    gpu = render(PeopleMeshes.from_images([s.cuda() for s in scenes], faces.cuda()), camera.to("cuda"))
    # Same arithmetic in float32 on both; a pixel centre within rounding of a shared edge may pick
    # the neighbouring face, so ids agree on >= 99.9 % of pixels and depth/colour within 1e-4.
    assert (gpu.instance.cpu() == cpu.instance).float().mean() > 0.999
    same = (gpu.face.cpu() == cpu.face) & (cpu.instance > 0)
    assert same.float().sum() / (cpu.instance > 0).sum() > 0.999
    torch.testing.assert_close(gpu.depth.cpu()[same], cpu.depth[same], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(gpu.color.cpu()[same], cpu.color[same], rtol=0, atol=1e-4)


def test_stripes_pattern_alternates_along_the_chosen_axis():
    quad = torch.tensor([[-1.0, -1.0, 3.0], [1.0, -1.0, 3.0], [1.0, 1.0, 3.0], [-1.0, 1.0, 3.0]])
    meshes = PeopleMeshes.from_images([quad[None]], torch.tensor([[0, 1, 2], [0, 2, 3]]),
                                      [torch.tensor([[0.8, 0.6, 0.4]])])
    flat = RenderSettings(shading=ShadingSettings(ambient=1.0, diffuse=0.0))
    out = render(meshes, canonical_camera(40, 40), flat, pattern=Stripes(period=0.5, axis=1, contrast=0.5))
    mask = out.instance[0] > 0
    rows = torch.nonzero(mask)[:, 0]
    y = (rows.float() + 0.5 - 20) / float(canonical_camera(40, 40).focal[0]) * 3.0  # camera-frame y at z = 3
    dark = torch.remainder(y / 0.5, 1.0) >= 0.5
    expected = torch.tensor([0.8, 0.6, 0.4]) * torch.where(dark, 0.5, 1.0).unsqueeze(1)
    torch.testing.assert_close(out.color[0][mask], expected, atol=1e-5, rtol=0)
    assert dark.any() and (~dark).any()
