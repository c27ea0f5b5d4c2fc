"""Shared logic of the weight-initialization study, imported by the stages in stages/:
config (params.yaml as one frozen object), errors and stage (one-line failures), paths,
files, data, initializers, model, device, training, parallel, batchnorm (precise BN),
updates, diagnostics, grid (the grid's verdict rule), evaluation, stats, tables and plots."""
