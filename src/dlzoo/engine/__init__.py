"""The one training engine: `runtime` (device, precision, ranks), `trainer` (the loop), `evaluation` (eval mode,
in training and out of it), `checkpoint`, `best` (the best epoch kept), `optim` (optimizers and schedules) and
`reporting` (console, metrics.jsonl, TensorBoard, curves)."""
