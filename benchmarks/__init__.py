"""Speed and memory benchmarks of negprompt (run from the repository root: python -m benchmarks.<name>)."""
