"""Hand-written GPU kernels (Pallas) for parts of the likelihood that XLA cannot fuse well; every kernel has an
XLA twin that the CPU (and any other device) uses, and the tests check the two against each other.

`kernels_enabled()` is False where Pallas' Triton backend cannot be imported (JAX has announced its removal in
favour of Mosaic GPU) or when GRADFIT_KERNELS=0 is set: the XLA forms are then used everywhere.
"""

import os

try:
    from gradfit.kernels.logit import log_denominators
    from gradfit.kernels.ordered import ordered_logit_person

    _IMPORTED = True
except ImportError:  # a JAX without Pallas' Triton backend
    _IMPORTED = False

    def _missing(*args, **kwargs):
        raise RuntimeError("gradfit.kernels: this JAX has no Pallas Triton backend")

    log_denominators = ordered_logit_person = _missing


def kernels_enabled() -> bool:
    return _IMPORTED and os.environ.get("GRADFIT_KERNELS", "1") != "0"


__all__ = ["kernels_enabled", "log_denominators", "ordered_logit_person"]
