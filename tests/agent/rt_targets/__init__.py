"""Code shapes the engine tests place actions in. Lines are found by their ``# L:`` markers."""
