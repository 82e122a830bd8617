"""How fast: xcebra against the reference package, and where a step spends its time."""
