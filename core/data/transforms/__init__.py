"""Sample transforms: ``transform(sample, rng) -> sample`` (see :mod:`.base`)."""
