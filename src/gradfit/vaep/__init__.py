"""VAEP: values soccer actions by how they change the chances of scoring and conceding.

Decroos, Bransen, Van Haaren and Davis, "Actions speak louder than goals", KDD 2019.
"""

__all__ = []
