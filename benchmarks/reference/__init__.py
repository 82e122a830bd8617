"""Side by side with the reference package cebra 0.6.1.

Modules named ``reference_*`` run in the environment of ``make bench-env`` and never import xcebra.
"""
