"""Standard detector parts (backbones, necks, priors, assigners, samplers, coders, losses,
post-processing), registered as the built-in plugin :mod:`core.models.plugin`."""
