"""Shared logic of the weight-initialization study: config, data, initializers, model, training, diagnostics, statistics, report."""
