"""How well: attribution maps and decoding scored against known ground truth on synthetic data."""
