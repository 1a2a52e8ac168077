"""Base class for layers made only of sub-layers, built by their first call.

A Keras 3 layer without a `build()` method is built by tracing its `call()`
symbolically first (variables created with deferred initialisers, their
initial values recomputed inside the trace at every use) and then running it
for real. For the encoders here that tracing was most of the build time
(figures in docs/performance.md, "Model build"). Every sub-layer that owns
variables (convolution, BN, dense) has its own `build()` and creates them from
the shapes it sees on its first call, so a container needs no build step of
its own.
"""
import keras


class Composite(keras.layers.Layer):
  """A layer whose state lives entirely in sub-layers that build themselves."""

  def build(self, input_shape):  # pylint: disable=unused-argument
    """Nothing to create here: sub-layers build on the first call."""
