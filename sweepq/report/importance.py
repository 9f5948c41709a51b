"""Parameter importance as W&B's sweep page shows it: a model-based importance beside a signed
correlation, so a parameter that matters non-monotonically is not mistaken for one that does not.

The importance is Optuna's (fANOVA over a random forest when scikit-learn is installed, else
PED-ANOVA, which needs nothing more): sweepq's trials are given to an in-memory Optuna study
with the distributions their values came from. The correlation is Spearman's rank correlation
(invariant to log scales); categorical parameters have none.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

from sweepq.report.data import Param, SweepView, label_of

__all__ = ["Importance", "compute"]


@dataclass(frozen=True)
class Importance:
    label: str
    importance: float
    correlation: float | None


def evaluator_name() -> str:
    return "fANOVA" if importlib.util.find_spec("sklearn") is not None else "PED-ANOVA"


def compute(view: SweepView) -> list[Importance]:
    """Rows sorted by importance, most important first; [] when there is too little to say."""
    scored = [(view.values(t), t.best) for t in view.trials if t.best is not None and math.isfinite(t.best)]
    params = [p for p in view.params if len({label_of(v.get(p.label)) for v, _ in scored}) > 1]
    if len(scored) < 3 or not params:
        return []
    importances = _optuna_importance(view.goal, params, scored)
    out = [Importance(p.label, importances.get(p.label, 0.0), _correlation(p, scored)) for p in params]
    return sorted(out, key=lambda r: -r.importance)


def _distribution(p: Param, values: list[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if p.kind == "categorical" or not all(_is_num(v) for v in values):
        choices = list(dict.fromkeys([label_of(c) for c in p.choices] + [label_of(v) for v in values]))
        return CategoricalDistribution(choices)
    lo, hi = float(min(values)), float(max(values))
    return FloatDistribution(lo, hi, log=p.kind == "log" and lo > 0)


Scored = list[tuple[dict[str, Any], float]]


def _optuna_importance(goal: str, params: list[Param], scored: Scored) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    dists = {p.label: _distribution(p, [v[p.label] for v, _ in scored if p.label in v]) for p in params}
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="maximize" if goal == "maximize" else "minimize")
    for values, best in scored:
        if not all(p.label in values for p in params):
            continue
        point = {
            p.label: label_of(values[p.label]) if hasattr(dists[p.label], "choices") else float(values[p.label])
            for p in params
        }
        study.add_trial(optuna.trial.create_trial(params=point, distributions=dists, value=best))
    evaluator: Any = (
        FanovaImportanceEvaluator(seed=0) if evaluator_name() == "fANOVA" else PedAnovaImportanceEvaluator()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA is marked experimental; its numbers are not
        try:
            result = get_param_importances(study, evaluator=evaluator, normalize=True)
        except (ValueError, RuntimeError):
            return {}
    return {k: float(v) for k, v in result.items()}


def _correlation(p: Param, scored: Scored) -> float | None:
    if p.kind == "categorical":
        return None
    pairs = [(float(v[p.label]), float(b)) for v, b in scored if _is_num(v.get(p.label))]
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant column gives nan with a warning
        rho = float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)
    return rho if math.isfinite(rho) else None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
