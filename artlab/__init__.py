"""artlab: a machine's opinion on a painting, and the reasons behind it.

The library behind the app and the CLI, in folders that follow the pipeline (docs/design.md), each knowing only the
ones below it: the core (``errors``, ``io``, ``progress``, ``images``); ``collection`` (the manifest contract, the
labelling rules, one resumable download, the builders); ``model`` (backbones, the classifier, transforms, kNN);
``report`` (metrics, geometry, charts, tables); ``runfolder`` (the run-folder contract); ``train`` and ``explain``;
and on top ``app`` (the only package that imports Streamlit) and ``cli``.
"""

__version__ = "0.1.0"
