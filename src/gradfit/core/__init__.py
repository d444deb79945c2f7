"""Pure numerics (JAX/numpy/scipy only): stable log-probabilities, integration draws, quadrature."""
