"""SSD box arithmetic (dlzoo.vision.boxes): anchors, matching, offsets, training targets and detection, against
values worked out by hand (and the curriculum's own worked example of a dog, a cat and five anchors)."""

import math

import pytest
import torch

from dlzoo.vision.boxes import (
    anchor_boxes,
    anchor_targets,
    decode_offsets,
    detect,
    encode_offsets,
    match_anchors,
    match_anchors_batched,
)

# The curriculum's example (14.4.3): a dog and a cat, and five anchors.
DOG = [0.1, 0.08, 0.52, 0.92]
CAT = [0.55, 0.2, 0.9, 0.88]
FIVE_ANCHORS = torch.tensor([[0.0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                             [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]])
# By hand: anchor 1 (centre 0.275, 0.3; 0.25 x 0.2) onto the dog (centre 0.31, 0.5; 0.42 x 0.84), anchor 2
# (0.755, 0.515; 0.25 x 0.93) and anchor 4 (0.745, 0.6; 0.35 x 0.6) onto the cat (0.725, 0.54; 0.35 x 0.68).
DOG_FROM_1 = [10 * 0.035 / 0.25, 10 * 0.2 / 0.2, 5 * math.log(0.42 / 0.25), 5 * math.log(0.84 / 0.2)]
CAT_FROM_2 = [10 * -0.03 / 0.25, 10 * 0.025 / 0.93, 5 * math.log(0.35 / 0.25), 5 * math.log(0.68 / 0.93)]
CAT_FROM_4 = [10 * -0.02 / 0.35, 10 * -0.06 / 0.6, 0.0, 5 * math.log(0.68 / 0.6)]


def test_anchor_boxes_of_a_2x2_map_in_order():
    # Per cell: (0.5, ratio 1) 0.5 x 0.5, (0.25, ratio 1) 0.25 x 0.25, (0.5, ratio 4) 1.0 wide x 0.25 high.
    anchors = anchor_boxes(2, 2, sizes=[0.5, 0.25], ratios=[1.0, 4.0])
    expected = []
    for cx, cy in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]:  # row-major, x fastest
        expected += [[cx - 0.25, cy - 0.25, cx + 0.25, cy + 0.25], [cx - 0.125, cy - 0.125, cx + 0.125, cy + 0.125],
                     [cx - 0.5, cy - 0.125, cx + 0.5, cy + 0.125]]
    assert anchors.shape == (12, 4) and anchors.dtype == torch.float32
    torch.testing.assert_close(anchors, torch.tensor(expected))


def test_anchor_boxes_line_up_with_a_permuted_conv_head():
    height, width, per_cell = 2, 3, 2
    anchors = anchor_boxes(height, width, sizes=[0.2], ratios=[1.0, 2.0])
    assert anchors.shape == (height * width * per_cell, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    for i in range(height):
        for j in range(width):
            for a in range(per_cell):
                # The head's output at row i, column j, anchor a, after permute(0, 2, 3, 1) and reshape.
                cx, cy = centres[(i * width + j) * per_cell + a].tolist()
                assert math.isclose(cx, (j + 0.5) / width, abs_tol=1e-6)
                assert math.isclose(cy, (i + 0.5) / height, abs_tol=1e-6)
    # The second anchor of a cell: size 0.2, ratio 2: 0.2 * sqrt(2) wide, 0.2 / sqrt(2) high.
    w, h = (anchors[1, 2:] - anchors[1, :2]).tolist()
    assert math.isclose(w, 0.2 * math.sqrt(2), rel_tol=1e-5) and math.isclose(h, 0.2 / math.sqrt(2), rel_tol=1e-5)


def test_match_anchors_of_the_dog_and_the_cat():
    # IoUs by hand: anchor 1 lies inside the dog (0.05 / 0.3528 = 0.14, under the threshold, but the dog's best),
    # anchor 2 and 4 overlap the cat by 0.57 and 0.75, anchor 3 (inside the cat) 0.21, anchor 0 the dog 0.05.
    assigned = match_anchors(FIVE_ANCHORS, torch.tensor([DOG, CAT]))
    assert assigned.dtype == torch.long
    assert assigned.tolist() == [-1, 0, 1, -1, 1]
    # Above every IoU, the threshold step assigns nothing: the cat claims its best anchor (4) and no other.
    assert match_anchors(FIVE_ANCHORS, torch.tensor([DOG, CAT]), iou_threshold=0.9).tolist() == [-1, 0, -1, -1, 1]


def test_a_box_claim_overrides_the_threshold_assignment():
    # Full-height strips: the anchor [0.1, 0.55] overlaps box A = [0, 0.5] by 0.4 / 0.55 = 0.73 and the narrow box
    # B = [0.45, 0.55] by 0.1 / 0.45 = 0.22; A's own anchor [0, 0.5] is claimed first (IoU 1), then B claims the
    # other anchor, its best one left, although A would have it by the threshold.
    anchors = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.1, 0.0, 0.55, 1.0]])
    boxes = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.45, 0.0, 0.55, 1.0]])
    assert match_anchors(anchors, boxes).tolist() == [0, 1]
    assert match_anchors(anchors, boxes[:1]).tolist() == [0, 0]


def test_match_anchors_with_no_boxes_or_no_overlap():
    assert match_anchors(FIVE_ANCHORS, torch.zeros(0, 4)).tolist() == [-1] * 5
    # A box that touches no anchor claims none (rather than an anchor across the picture).
    far = torch.tensor([[0.95, 0.0, 1.0, 0.04]])
    assert match_anchors(FIVE_ANCHORS, far).tolist() == [-1] * 5
    # More boxes than anchors: each anchor goes to one box, by the largest IoU.
    one_anchor = torch.tensor([[0.5, 0.2, 0.9, 0.9]])
    assert match_anchors(one_anchor, torch.tensor([DOG, CAT, [0.0, 0.0, 0.1, 0.1]])).tolist() == [1]


def _matched_per_picture(anchors, boxes, present, iou_threshold):
    """Each picture's present boxes matched alone by `match_anchors`, as slots of `boxes` (-1 for none)."""
    slots = []
    for picture, kept in zip(boxes, present, strict=True):
        real = kept.nonzero().squeeze(1)
        match = match_anchors(anchors, picture[real], iou_threshold)
        slots.append(torch.where(match >= 0, real[match.clamp(min=0)], -1) if real.numel() else match)
    return torch.stack(slots)


@pytest.mark.parametrize("seed", range(6))
def test_batched_matching_is_per_picture_matching(seed):
    """Random pictures of 0 to G boxes, their padding slots anywhere (and covering anchors, which must not count),
    repeated boxes and boxes equal to an anchor (ties in the IoU), and more boxes than anchors (seed 5)."""
    generator = torch.Generator().manual_seed(seed)
    anchors = anchor_boxes(2, 2, sizes=[0.5, 0.25], ratios=[1.0, 2.0]) if seed != 5 else FIVE_ANCHORS[:2]
    count, slots = 16, 6
    corner = torch.rand(count, slots, 2, generator=generator) * 0.7
    boxes = torch.cat([corner, corner + 0.02 + torch.rand(count, slots, 2, generator=generator) * 0.5], dim=-1)
    boxes[1, 3] = boxes[1, 1]  # a box given twice: both tie for every anchor
    boxes[2, :2] = anchors[:2]  # boxes exactly on anchors (IoU 1)
    present = torch.rand(count, slots, generator=generator) < 0.6
    present[0] = False  # pictures without boxes
    present[3] = False
    present[1, [1, 3]] = True
    for threshold in (0.5, 0.1, 1.0):
        expected = _matched_per_picture(anchors, boxes, present, threshold)
        assert torch.equal(match_anchors_batched(anchors, boxes, present, threshold), expected)
    assert (expected[0] == -1).all() and (expected[3] == -1).all()
    assert torch.equal(match_anchors_batched(anchors, boxes[:, :0], present[:, :0]), torch.full_like(expected, -1))


def test_encode_offsets_by_hand():
    offsets = encode_offsets(FIVE_ANCHORS[[1, 2, 4]], torch.tensor([DOG, CAT, CAT]))
    torch.testing.assert_close(offsets, torch.tensor([DOG_FROM_1, CAT_FROM_2, CAT_FROM_4]), atol=1e-4, rtol=1e-4)


def test_decode_offsets_by_hand_and_over_a_batch():
    anchors = torch.tensor([[0.2, 0.2, 0.6, 0.4], [0.0, 0.0, 1.0, 1.0]])  # centres (0.4, 0.3) and (0.5, 0.5)
    # Centre moved by 2.5 / 10 of 0.4 right and 5 / 10 of 0.2 up, width doubled: centre (0.5, 0.2), 0.8 x 0.2.
    offsets = torch.tensor([[[2.5, -5.0, 5 * math.log(2), 0.0], [0.0, 0.0, 0.0, 0.0]],
                            [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -5 * math.log(2), -5 * math.log(4)]]])
    boxes = decode_offsets(anchors, offsets)
    expected = torch.tensor([[[0.1, 0.1, 0.9, 0.3], [0.0, 0.0, 1.0, 1.0]],
                             [[0.2, 0.2, 0.6, 0.4], [0.25, 0.375, 0.75, 0.625]]])
    torch.testing.assert_close(boxes, expected)


def test_encode_then_decode_is_the_identity():
    anchors = anchor_boxes(3, 3, sizes=[0.3, 0.1], ratios=[1.0, 2.0, 0.5])
    generator = torch.Generator().manual_seed(0)
    corner = torch.rand(anchors.shape[0], 2, generator=generator) * 0.5
    boxes = torch.cat([corner, corner + 0.05 + torch.rand(anchors.shape[0], 2, generator=generator) * 0.4], dim=1)
    torch.testing.assert_close(decode_offsets(anchors, encode_offsets(anchors, boxes)), boxes, atol=1e-5, rtol=0)


def test_anchor_targets_of_a_batch_with_padding():
    # Picture 0: dog (label 0), cat (label 1) and a padding slot that covers anchor 0 exactly (it must not count);
    # picture 1: only the cat, as label 2 in slot 1, between two padding slots that cover anchor 1.
    boxes = torch.tensor([[DOG, CAT, FIVE_ANCHORS[0].tolist()],
                          [FIVE_ANCHORS[1].tolist(), CAT, FIVE_ANCHORS[1].tolist()]])
    labels = torch.tensor([[0, 1, 7], [7, 2, 7]])
    present = torch.tensor([[True, True, False], [False, True, False]])
    offsets, mask, classes = anchor_targets(FIVE_ANCHORS, boxes, labels, present)
    assert classes.dtype == torch.long and mask.dtype == torch.float32 and offsets.shape == (2, 5, 4)
    assert classes.tolist() == [[0, 1, 2, 0, 2], [0, 0, 3, 0, 3]]
    assert mask.tolist() == [[0, 1, 1, 0, 1], [0, 0, 1, 0, 1]]
    zero = [0.0] * 4
    expected = torch.tensor([[zero, DOG_FROM_1, CAT_FROM_2, zero, CAT_FROM_4],
                             [zero, zero, CAT_FROM_2, zero, CAT_FROM_4]])
    torch.testing.assert_close(offsets, expected, atol=1e-4, rtol=1e-4)


def test_anchor_targets_without_boxes_is_all_background():
    offsets, mask, classes = anchor_targets(FIVE_ANCHORS, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long),
                                            torch.zeros(2, 0, dtype=torch.bool))
    assert offsets.shape == (2, 5, 4) and not offsets.any() and not mask.any()
    assert classes.dtype == torch.long and classes.tolist() == [[0] * 5] * 2


# Three anchors: 0 and 1 overlap by IoU 0.152 / 0.168 = 0.9, 2 lies apart.
DETECT_ANCHORS = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]])


def _logits(probabilities: list[list[list[float]]]) -> torch.Tensor:
    """Logits whose softmax is the given probabilities (background first)."""
    return torch.tensor(probabilities).log()


def test_detect_suppresses_per_class_and_thresholds():
    logits = _logits([
        # A duplicate of the same class (0.8 under 0.9) goes; the background-heavy anchor's best object is 0.1.
        [[0.05, 0.9, 0.05], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]],
        # An overlapping box of the other class stays; anchor 2 is class 0 at 0.5, grown past the picture's edge.
        [[0.05, 0.9, 0.05], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]],
    ])
    offsets = torch.zeros(2, 3, 4)
    offsets[1, 2, 2:] = 5 * math.log(2)  # 0.3 -> 0.6 wide and high about (0.75, 0.75): (0.45, 0.45, 1.05, 1.05)
    first, second = detect(logits, offsets, DETECT_ANCHORS)

    torch.testing.assert_close(first["boxes"], DETECT_ANCHORS[:1])
    torch.testing.assert_close(first["scores"], torch.tensor([0.9]))
    assert first["labels"].dtype == torch.long and first["labels"].tolist() == [0]

    torch.testing.assert_close(second["boxes"], torch.tensor([DETECT_ANCHORS[0].tolist(), DETECT_ANCHORS[1].tolist(),
                                                              [0.45, 0.45, 1.0, 1.0]]))
    torch.testing.assert_close(second["scores"], torch.tensor([0.9, 0.7, 0.5]))
    assert second["labels"].tolist() == [0, 1, 0]

    top_two = detect(logits, offsets, DETECT_ANCHORS, max_detections=2)[1]
    assert top_two["labels"].tolist() == [0, 1]
    # A stricter threshold keeps the 0.9 and the 0.7 only; a looser NMS keeps the duplicate of picture 0.
    assert detect(logits, offsets, DETECT_ANCHORS, score_threshold=0.6)[1]["scores"].shape == (2,)
    assert detect(logits, offsets, DETECT_ANCHORS, nms_iou=0.95)[0]["labels"].tolist() == [0, 0]


def test_detect_of_nothing_has_empty_shapes():
    logits = _logits([[[0.9, 0.05, 0.05]] * 3])
    (result,) = detect(logits, torch.zeros(1, 3, 4), DETECT_ANCHORS)
    assert result["boxes"].shape == (0, 4) and result["scores"].shape == (0,)
    assert result["labels"].shape == (0,) and result["labels"].dtype == torch.long
