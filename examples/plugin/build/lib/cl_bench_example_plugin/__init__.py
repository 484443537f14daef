"""An example external cl-bench strategy package (see README.md)."""
