"""The ICLV workload: spec, data layout, and one module per likelihood component."""
