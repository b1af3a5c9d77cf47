"""Model families: built-in names, any scikit-learn-compatible class by dotted path.

Example:
    >>> path, cls = estimator_class(Candidate(name="rf", estimator="random_forest"), "binary")
    >>> path
    'sklearn.ensemble.RandomForestClassifier'
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from mlcycle.errors import BadInput
from mlcycle.spec import Candidate

FAMILIES: dict[str, dict[str, str]] = {
    "hist_gradient_boosting": {
        "classifier": "sklearn.ensemble.HistGradientBoostingClassifier",
        "regressor": "sklearn.ensemble.HistGradientBoostingRegressor",
    },
    "logistic_regression": {"classifier": "sklearn.linear_model.LogisticRegression"},
    "linear_regression": {"regressor": "sklearn.linear_model.Ridge"},
    "linear": {
        "classifier": "sklearn.linear_model.LogisticRegression",
        "regressor": "sklearn.linear_model.Ridge",
    },
    "random_forest": {
        "classifier": "sklearn.ensemble.RandomForestClassifier",
        "regressor": "sklearn.ensemble.RandomForestRegressor",
    },
    # Imported only when a spec names it: serving never needs LightGBM's import.
    "lightgbm": {"classifier": "lightgbm.LGBMClassifier", "regressor": "lightgbm.LGBMRegressor"},
}
# Defaults that make a family quiet or deterministic; the spec's params override them.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "lightgbm": {"verbose": -1, "deterministic": True, "force_row_wise": True},
    "logistic_regression": {"max_iter": 1000},
    "linear": {},
}


def family_of(candidate: Candidate) -> str:
    """The built-in family name, or ``custom`` for a dotted path."""
    return candidate.estimator if candidate.estimator in FAMILIES else "custom"


def estimator_class(candidate: Candidate, task: str) -> tuple[str, type[Any]]:
    """(dotted path, class) of a candidate's estimator for ``task``; a clear error if unknown."""
    role = "regressor" if task == "regression" else "classifier"
    path = candidate.estimator
    if path in FAMILIES:
        if role not in FAMILIES[path]:
            raise BadInput(
                f"candidate '{candidate.name}': family '{path}' has no {role}",
                f"the task is {task}",
                f"use one of: {', '.join(f for f, r in FAMILIES.items() if role in r)}",
            )
        path = FAMILIES[path][role]
    module_name, _, class_name = path.rpartition(".")
    cls: Any = None
    try:
        cls = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except ModuleNotFoundError as exc:
        if candidate.estimator == "lightgbm":
            raise BadInput(
                f"candidate '{candidate.name}' needs LightGBM",
                "the lightgbm package is not installed",
                "pip install 'mlcycle[train]'",
            ) from exc
    except (ImportError, AttributeError):
        cls = None
    if cls is None or not (inspect.isclass(cls) and hasattr(cls, "fit")):
        raise BadInput(
            f"candidate '{candidate.name}': unknown estimator '{candidate.estimator}'",
            "it is neither a built-in family nor an importable scikit-learn estimator class",
            f"use a family ({', '.join(FAMILIES)}) or a dotted path like "
            "sklearn.ensemble.ExtraTreesClassifier",
        )
    if not hasattr(cls, "get_params"):
        raise BadInput(
            f"candidate '{candidate.name}': {path} is not scikit-learn compatible",
            "an estimator needs get_params/set_params to be cloned across folds and trials",
            "derive it from sklearn.base.BaseEstimator",
        )
    return path, cls


def accepted_params(cls: type[Any]) -> set[str] | None:
    """Constructor parameter names; None when it also takes ``**kwargs`` (e.g. LightGBM)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return set(parameters) - {"self"}


def check_params(candidate: Candidate, cls: type[Any]) -> None:
    """Fixed params and the search space must name constructor parameters of ``cls``."""
    accepted = accepted_params(cls)
    checked = (
        [] if accepted is None else [("params", candidate.params), ("search", candidate.search)]
    )
    for where, names in checked:
        unknown = sorted(set(names) - (accepted or set()))
        if unknown:
            raise BadInput(
                f"candidate '{candidate.name}': {cls.__name__} has no parameter(s) {unknown}",
                f"train.candidates[].{where} names the estimator's constructor parameters"
                + (" (the search space does not fit this estimator)" if where == "search" else ""),
                f"allowed: {', '.join(sorted(accepted or ()))}",
            )
    for name, space in candidate.search.items():
        if space.type == "int" and (
            space.low != int(space.low or 0) or space.high != int(space.high or 0)
        ):
            raise BadInput(
                f"candidate '{candidate.name}': search '{name}' is int but its bounds are not",
                f"low={space.low}, high={space.high}",
                "use whole numbers, or type: float",
            )


def default_params(candidate: Candidate, cls: type[Any], seed: int) -> dict[str, Any]:
    """The constructor params before tuning: family defaults, the spec's params, the seed."""
    params = dict(FAMILY_DEFAULTS.get(candidate.estimator, {}))
    accepted = accepted_params(cls)
    if accepted is not None:
        params = {k: v for k, v in params.items() if k in accepted}
    params.update(candidate.params)
    if accepted is None or "random_state" in accepted:
        params.setdefault("random_state", seed)
    return params
