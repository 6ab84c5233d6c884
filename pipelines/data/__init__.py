"""Reading the configured source and landing it as immutable, id'd batch files."""
