"""Collection builders: ``demo`` (CC0 Met paintings from a wheel), ``folder``, ``wikiart`` (HF hub), ``met`` (Met API)."""
