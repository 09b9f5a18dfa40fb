"""The run folder's file names (docs/run-folder.md) and how a folder is recognised as artlab's run, without torch.

artlab.runfolder writes and reads these files; this module holds only their names, so that the CLI can tell a run
from a user's folder (artlab.safety.check_output) before any command loads a model.
"""

from __future__ import annotations

from artlab.safety import recognise, versioned_json

CARD, MODEL, KNN, HISTORY, PREDICTIONS, EMBEDDINGS, GEOMETRY, UMAP = (
    "card.json", "model.pt", "knn.npz", "history.csv", "predictions.csv", "embeddings.npz", "geometry.json",
    "umap.npz")
PAINTINGS, THUMBS, THUMB_SIDE = "paintings.csv", "thumbs", 192
RUN_FILES = (CARD, MODEL, KNN, HISTORY, PREDICTIONS, EMBEDDINGS, GEOMETRY)
RESUME, STAGED_CONFIG = "resume.pt", "config.json"  # in the staging folder only

# a folder whose card says which artlab wrote it is artlab's run (artlab.safety.check_output may replace it)
recognise("run", lambda folder: versioned_json(folder / CARD))
