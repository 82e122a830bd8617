"""How far it scales: many fits on Dask workers, chunked attribution maps, data-parallel training."""
