"""Exercise for chapter 3 (transforms): colour deconvolution, from RGB to stain amounts.

Write `separate(x)`: the haematoxylin, eosin and DAB amounts of every pixel of a float
batch x (B, 3, H, W) in [0, 1], before any clipping (Ruifrok & Johnston 2001, as
skimage.color.rgb2hed computes them):

    od     = ln(max(x, 1e-6)) / ln(1e-6)       per pixel and channel, (B, 3, H, W)
    stains = od @ HED_FROM_RGB                  per pixel: a (3,) row times a 3x3 matrix

In optical density the dyes add linearly (Beer-Lambert), so one matrix turns a pixel's
three ODs into its three dye amounts. `stain.HED_FROM_RGB` (rows: R, G, B; columns: H, E,
DAB) is the inverse of skimage's stain matrix `stain.RGB_FROM_HED`. Dividing by ln(1e-6)
(negative) makes white glass 0 and a pixel of 1e-6 in every channel 1 along (1, 1, 1).

`stain.rgb_to_hed` (which clips negative amounts to 0) and `stain.HEDJitter` call this
function (chapter 3 shows both; chapter 12 studies them), so the oracle tests check it
against skimage.color.rgb2hed and hed2rgb, a round trip, and HED jitter with replayed
draws:

    python -m pathmnist.exercises check docs/exercises/colour_deconvolution.py

Hints. `x.clamp_min(1e-6)`, `torch.log`, `math.log(1e-6)`; `torch.einsum("bchw,cs->bshw",
od, m)` multiplies every pixel by the matrix, with m = torch.tensor(stain.HED_FROM_RGB,
dtype=x.dtype, device=x.device). Keep x's dtype: the tests compare float64 to 1e-9.
"""

REPLACES = {"pathmnist.augment.stain._separate": "separate"}
ORACLE_TESTS = (
    "test_rgb_to_hed_matches_skimage",
    "test_round_trip_where_no_stain_is_clipped",
    "test_hed_jitter_sigma_zero_is_the_identity",
    "test_hed_jitter_matches_skimage_with_replayed_draws",
)


def separate(x):
    """Unclipped stain amounts (B, 3, H, W) (H, E, DAB) of rgb x (B, 3, H, W) in [0, 1]."""
    # YOUR CODE HERE
    raise NotImplementedError(
        "write colour deconvolution: see docs/exercises/colour_deconvolution.py"
    )
