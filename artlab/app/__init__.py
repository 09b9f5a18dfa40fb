"""The app layer: the only package of artlab that imports Streamlit.

``frame`` (session defaults, the run chosen, ``run_safely``, the legacy ``pages/`` workaround), ``cache`` (the one
cache decorator, keyed on a run and its card), ``runs`` (what the app reads from runs), ``images`` (previews and
samples), ``analysis`` (predictions, CAMs, neighbours, the map), ``widgets`` (display helpers). Pages use the
names re-exported here: ``from artlab import app``, then ``app.current_run()``.
"""

from artlab.app.frame import (  # noqa: F401
    APP_ROOT, DEFAULTS, RUNS_ENV, UPLOAD_TYPES, current_run, default_runs_root, init_state, require_frame,
    run_safely)
from artlab.app.runs import (  # noqa: F401
    card, embeddings, geometry, history, list_runs, load_predictor, open_run, paintings, predictions,
    results_tables, runs_overview, test_gallery)
from artlab.app.images import (  # noqa: F401
    painting_file, painting_preview, preview, sample_choices, short, thumbnail)
from artlab.app.widgets import (  # noqa: F401
    percent_style, percent_table, show_image)
from artlab.app.analysis import (  # noqa: F401
    MAX_PATH_PAINTINGS, METHOD_NAMES, TOO_SLOW_FOR_THE_APP, cam_methods, digest, explanations, feature_maps,
    map_table, method_name, nearest_paintings, overlay, path_between, predict)
