"""Keras 3 layers: ViT backbone, object queries, object functions, heads."""
