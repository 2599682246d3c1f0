"""Repository root marker for pytest: makes the packages importable without installing."""
