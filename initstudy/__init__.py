"""Shared logic of the weight-initialization study, imported by the stages in stages/:
config (params.yaml as one frozen object), checks, errors and runner (one-line failures),
paths, files, sources (reading the data) and shards (the prepared TFRecords), initializers,
model, device (GPU claim, TensorFlow start, settings), seeding, training, seed_run (one run's
process), parallel (runs side by side), batchnorm (precise BN), updates, diagnostics, verdicts
(the grid's verdict rule), evaluation, stats, formatting, report_text and plots."""
