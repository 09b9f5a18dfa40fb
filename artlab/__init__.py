"""artlab: a machine's opinion on a painting, and the reasons behind it.

The library behind the app and the CLI. Modules, from data to pictures:
``images`` (reading real files), ``collection`` (the manifest contract), ``sources`` (collection builders),
``splits``, ``backbones`` (the one registry of architectures), ``models``, ``training``, ``knn``, ``metrics``,
``runs`` (the run-folder contract), ``geometry``, ``explain``, ``charts``, ``experiment`` and ``cli``.
"""

__version__ = "0.1.0"
