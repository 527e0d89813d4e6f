"""Measuring models beyond their training loss: Fréchet distances and classifier-based judges of generated images,
and the per-class report of classifiers."""
