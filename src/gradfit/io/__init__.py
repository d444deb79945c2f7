"""Reading specs and data from files; the only layer (with runs/cli) that touches the file system."""

from gradfit.io.data import load_data
from gradfit.io.spec import read_spec, spec_from_dict, write_schema

__all__ = ["load_data", "read_spec", "spec_from_dict", "write_schema"]
