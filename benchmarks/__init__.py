"""The benchmark suite: `python -m benchmarks` times upstream micrograd, the pure and compiled engines, and PyTorch."""
