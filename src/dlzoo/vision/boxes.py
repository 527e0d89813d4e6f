"""The box arithmetic of an SSD detector, as the curriculum's "anchor boxes" and "SSD" chapters build it: anchors
centred on every cell of a feature map, each anchor matched to at most one true box, offsets to regress from an
anchor to its box (and back), and the decoding of a network's outputs into detections.

Boxes are (x1, y1, x2, y2) in coordinates normalised to [0, 1] of the picture's width and height. The arithmetic
is the curriculum's, vectorised over the batch where the work allows it; IoU, box conversion and per-class NMS are
torchvision's (`torchvision.ops`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms, box_convert, box_iou

# The curriculum's offset scales: centre offsets are divided by 0.1 and log size ratios by 0.2 of the anchor's
# size (SSD's "variances"), which brings the regression targets to about unit scale.
CENTRE_SCALE = 10.0
SIZE_SCALE = 5.0


def anchor_boxes(height: int, width: int, sizes: Sequence[float], ratios: Sequence[float]) -> torch.Tensor:
    """Anchors (height * width * (len(sizes) + len(ratios) - 1), 4) centred on every cell of a height x width feature
    map, as the curriculum's `multibox_prior` makes them: per cell, (sizes[i], ratios[0]) for every i, then
    (sizes[0], ratios[j]) for j >= 1, rather than every pair, to keep the count linear in the two lists.

    An anchor of size s and ratio r (width / height) is w = s * sqrt(r), h = s / sqrt(r) of the picture's width and
    height. The curriculum also multiplies w by the map's height / width; we do not, so an anchor's ratio is r in
    pixels when the picture is square (SSD's own 300x300, TinySSD's 256x256), and r * W / H on a W x H picture.

    Order: row-major over cells (x fastest), the anchors of a cell together, so that anchor (i * width + j) * k + a
    lines up with a conv head's output (N, k * m, height, width) permuted to (N, height, width, k * m) and reshaped
    to (N, height * width * k, m)."""
    sizes_t = torch.tensor(sizes, dtype=torch.float32)
    ratios_t = torch.tensor(ratios, dtype=torch.float32)
    # (size, ratio) per anchor of a cell: every size with the first ratio, then the first size with the others.
    cell_sizes = torch.cat([sizes_t, sizes_t[:1].expand(len(ratios) - 1)])
    cell_ratios = torch.cat([ratios_t[:1].expand(len(sizes)), ratios_t[1:]])
    half_w = cell_sizes * cell_ratios.sqrt() / 2
    half_h = cell_sizes / cell_ratios.sqrt() / 2
    corners = torch.stack([-half_w, -half_h, half_w, half_h], dim=1)  # (k, 4) around the cell's centre

    centre_y = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    centre_x = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(centre_y, centre_x, indexing="ij")
    centres = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)  # (cells, 1, 4)
    return (centres + corners).reshape(-1, 4)


def match_anchors(anchors: torch.Tensor, boxes: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """For anchors (A, 4) and one picture's true boxes (G, 4), G may be 0: the index of the true box each anchor is
    assigned (A,) long, -1 for none. The curriculum's `assign_anchor_to_bbox`: first, each anchor whose best IoU
    is >= iou_threshold gets that box; then every true box claims its best anchor greedily (the largest IoU left
    in the whole IoU matrix first, removing that anchor's row and that box's column), overriding the first step, so
    that a box that no anchor covers well (small, or an odd shape) still gets one to learn from.

    Unlike the curriculum, a box makes no claim once no anchor left overlaps it at all (an anchor at IoU 0 would
    be taught to move across the picture), and the claims stop when the anchors run out (G > A)."""
    assigned = torch.full((anchors.shape[0],), -1, dtype=torch.long, device=anchors.device)
    if boxes.shape[0] == 0:
        return assigned
    iou = box_iou(anchors, boxes)  # (A, G)
    best_iou, best_box = iou.max(dim=1)
    assigned = torch.where(best_iou >= iou_threshold, best_box, assigned)

    num_boxes = boxes.shape[0]
    for _ in range(min(anchors.shape[0], num_boxes)):
        flat = iou.argmax()
        anchor, box = flat // num_boxes, flat % num_boxes
        # Tensor arithmetic rather than .item() and `if`, so that the loop never waits on a GPU.
        assigned[anchor] = torch.where(iou[anchor, box] > 0, box, assigned[anchor])
        iou[anchor, :] = -1
        iou[:, box] = -1
    return assigned


def encode_offsets(anchors: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The offsets (..., A, 4) that move anchors (..., A, 4) onto boxes (..., A, 4), the curriculum's
    `offset_boxes`: the centre's shift in units of the anchor's width and height times 10, the log of the
    width and height ratios times 5. eps keeps the log finite for a degenerate (zero-size) box."""
    anchor_c = box_convert(anchors, "xyxy", "cxcywh")
    box_c = box_convert(boxes, "xyxy", "cxcywh")
    centre = CENTRE_SCALE * (box_c[..., :2] - anchor_c[..., :2]) / anchor_c[..., 2:]
    size = SIZE_SCALE * torch.log(eps + box_c[..., 2:] / anchor_c[..., 2:])
    return torch.cat([centre, size], dim=-1)


def decode_offsets(anchors: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """The boxes (..., A, 4) that offsets (..., A, 4) make of anchors (A, 4) (broadcast over the leading dims): the
    inverse of `encode_offsets`, the curriculum's `offset_inverse`. Not clipped to the picture."""
    anchor_c = box_convert(anchors, "xyxy", "cxcywh")
    centre = anchor_c[..., :2] + offsets[..., :2] / CENTRE_SCALE * anchor_c[..., 2:]
    size = anchor_c[..., 2:] * torch.exp(offsets[..., 2:] / SIZE_SCALE)
    return box_convert(torch.cat([centre, size], dim=-1), "cxcywh", "xyxy")


def match_anchors_batched(anchors: torch.Tensor, boxes: torch.Tensor, present: torch.Tensor,
                          iou_threshold: float = 0.5) -> torch.Tensor:
    """`match_anchors` for a batch at once: anchors (A, 4), boxes (N, G, 4), present (N, G) bool (False for padding
    slots, never matched). The slot (N, A) of `boxes` each anchor is assigned, -1 for none: the same as matching
    each picture's present boxes alone, in about G steps for the batch instead of one loop per picture.

    Padding slots and claimed rows and columns hold an IoU of -1, below any real one (>= 0): the first largest IoU
    of a picture's (A, G) matrix, row-major, is then the one `match_anchors` finds in its (A, present) matrix, and
    a picture whose real boxes have all made their claims goes through the remaining steps claiming nothing."""
    count, slots = boxes.shape[:2]
    assigned = torch.full((count, anchors.shape[0]), -1, dtype=torch.long, device=anchors.device)
    if slots == 0:
        return assigned
    # torchvision's box_iou of every anchor with every picture's boxes: (A, N * G) -> (N, A, G).
    iou = box_iou(anchors, boxes.reshape(-1, 4)).view(-1, count, slots).transpose(0, 1).contiguous()
    iou.masked_fill_(~present[:, None, :], -1.0)
    best_iou, best_slot = iou.max(dim=2)
    assigned = torch.where(best_iou >= iou_threshold, best_slot, assigned)

    pictures = torch.arange(count, device=anchors.device)
    for _ in range(min(anchors.shape[0], slots)):
        flat = iou.view(count, -1).argmax(dim=1)  # (N,): each picture's largest IoU left
        anchor, slot = flat // slots, flat % slots
        claims = iou[pictures, anchor, slot] > 0
        assigned[pictures, anchor] = torch.where(claims, slot, assigned[pictures, anchor])
        iou[pictures, anchor, :] = -1
        iou[pictures, :, slot] = -1
    return assigned


def anchor_targets(anchors: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, present: torch.Tensor,
                   iou_threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training targets for a batch, the curriculum's `multibox_target`: anchors (A, 4), boxes (N, G, 4), labels
    (N, G) long (object classes 0..C-1), present (N, G) bool (False for the padding slots that make pictures with
    fewer boxes fit the batch). Returns (offsets (N, A, 4), offset_mask (N, A) float, 1 where an anchor is assigned
    an object, classes (N, A) long: 0 = background, label + 1 for an assigned anchor). The offsets of unassigned
    anchors are 0 (the mask leaves them out of the loss anyway)."""
    slots = match_anchors_batched(anchors, boxes, present, iou_threshold)
    assigned = slots >= 0
    if boxes.shape[1] == 0:  # nothing to gather from: every anchor is background
        return anchors.new_zeros(slots.shape + (4,)), assigned.float(), torch.zeros_like(slots)
    index = slots.clamp(min=0)
    matched_boxes = boxes.gather(1, index.unsqueeze(-1).expand(-1, -1, 4))
    offsets = torch.where(assigned.unsqueeze(-1), encode_offsets(anchors, matched_boxes), 0.0)
    classes = torch.where(assigned, labels.gather(1, index) + 1, 0)
    return offsets, assigned.float(), classes


def detect(class_logits: torch.Tensor, offsets: torch.Tensor, anchors: torch.Tensor, nms_iou: float = 0.5,
           score_threshold: float = 0.3, max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """Detections per picture from class_logits (N, A, C + 1) (index 0 background) and offsets (N, A, 4): each
    anchor's most probable object class (background ignored, so that a weak object is still seen) with its softmax
    probability as the score; scores < score_threshold dropped; per-class NMS (an overlapping box of another class
    is a different object); the top max_detections by score. Returns a list of N dicts {"boxes": (K, 4) clipped to
    [0, 1], "scores": (K,), "labels": (K,) long object classes 0..C-1}, highest score first: the format
    torchmetrics' MeanAveragePrecision takes."""
    probabilities = class_logits.softmax(dim=-1)
    scores, labels = probabilities[..., 1:].max(dim=-1)  # labels count object classes from 0
    boxes = decode_offsets(anchors, offsets).clamp(0.0, 1.0)
    return [_picture_detections(boxes[n], scores[n], labels[n], nms_iou, score_threshold, max_detections)
            for n in range(class_logits.shape[0])]


def _picture_detections(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, nms_iou: float,
                        score_threshold: float, max_detections: int) -> dict[str, torch.Tensor]:
    """One picture's anchors (A, 4), scores (A,) and labels (A,) thresholded, suppressed per class and cut."""
    confident = scores >= score_threshold
    boxes, scores, labels = boxes[confident], scores[confident], labels[confident]
    keep = batched_nms(boxes, scores, labels, nms_iou)[:max_detections]  # sorted by decreasing score
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
