"""Dataset loaders: each returns NumPy arrays plus split indices; tf.data pipelines live beside them."""
