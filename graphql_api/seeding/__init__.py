"""Data to load with ``graphql-api seed``: the demo, and the benchmark datasets."""
