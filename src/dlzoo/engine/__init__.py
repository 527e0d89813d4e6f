"""The one training engine: `runtime` (device, precision, ranks), `trainer` (the loop), `checkpoint`, `optim`
(optimizers and schedules) and `reporting` (console, metrics.jsonl, TensorBoard, curves)."""
