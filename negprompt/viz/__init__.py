"""Plotly figure builders, 2-D maps (PCA, UMAP) and display tables for the dashboard and notebooks.

Imported lazily (``import negprompt`` does not import plotly); umap-learn is imported only when a
UMAP map is computed. Every function is pure: it takes data (arrays, DataFrames, dicts of a run
directory) and returns a figure, an array or a DataFrame; none reads application state.
"""

from negprompt.analysis import (
    DECISION_FILTERS,
    Rates,
    decision_counts,
    decision_table,
    ood_class_breakdown,
    page_slice,
    rates_at,
    roc_points,
    slider_range,
    threshold_at_tpr,
)
from negprompt.viz.embedding import (
    coinciding_groups,
    context_token_table,
    embedding_figure,
    exact_knn,
    pca_project,
    prompt_points,
    umap_project,
    warm_umap,
)
from negprompt.viz.evidence import decision_evidence, region_box, region_png
from negprompt.viz.explain import (
    decomposition_figure,
    explain_row,
    explanation_figure,
    nearest_images,
    prompt_similarities,
    run_temperature,
    similarity_range,
    terms_table,
    top_similarities,
)
from negprompt.viz.explorer import KEPT_STEPS, flipped_images, score_digits, threshold_explorer_figure
from negprompt.viz.figures import (
    PALETTE,
    metrics_comparison_figure,
    roc_figure,
    score_histogram_figure,
    score_pair_figure,
)
from negprompt.viz.images import Gallery, image_gallery, placeholder_png, thumbnail_png
from negprompt.viz.notebook import notebook_output, weights_notice
from negprompt.viz.promptmap import (
    IDENTICAL_TOL,
    identical_groups,
    map_figure,
    map_points,
    map_sentence,
    map_trustworthiness,
)
from negprompt.viz.tables import (
    METRIC_LABELS,
    compare_methods,
    compare_metrics,
    config_summary,
    leaderboard_table,
    method_rows,
    metrics_percent,
    shifted_accuracy_table,
)

__all__ = [
    "DECISION_FILTERS",
    "IDENTICAL_TOL",
    "identical_groups",
    "map_figure",
    "map_points",
    "map_sentence",
    "map_trustworthiness",
    "Gallery",
    "KEPT_STEPS",
    "METRIC_LABELS",
    "shifted_accuracy_table",
    "PALETTE",
    "Rates",
    "coinciding_groups",
    "compare_methods",
    "compare_metrics",
    "config_summary",
    "context_token_table",
    "decision_counts",
    "decision_evidence",
    "decision_table",
    "embedding_figure",
    "exact_knn",
    "flipped_images",
    "explanation_figure",
    "decomposition_figure",
    "explain_row",
    "nearest_images",
    "run_temperature",
    "terms_table",
    "leaderboard_table",
    "method_rows",
    "metrics_comparison_figure",
    "metrics_percent",
    "notebook_output",
    "ood_class_breakdown",
    "image_gallery",
    "page_slice",
    "pca_project",
    "placeholder_png",
    "prompt_points",
    "prompt_similarities",
    "region_box",
    "region_png",
    "rates_at",
    "roc_figure",
    "roc_points",
    "score_digits",
    "score_histogram_figure",
    "score_pair_figure",
    "similarity_range",
    "slider_range",
    "thumbnail_png",
    "threshold_explorer_figure",
    "threshold_at_tpr",
    "top_similarities",
    "umap_project",
    "weights_notice",
    "warm_umap",
]
