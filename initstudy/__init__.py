"""Shared logic of the weight-initialization study: params, data, initializers, model."""
