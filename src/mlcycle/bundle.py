"""The model bundle: the one owner of its layout.

A bundle is one content-addressed folder with everything a deployed model
needs. Serving, monitoring, the registry, the CLI and the pipeline open it
through :class:`Bundle`; no other module spells a file name of it.

Parts:

- serving: ``model.joblib`` (the fitted scikit-learn pipeline), ``schema.json``
  (the data contract), ``meta.json`` (:class:`~mlcycle.artifacts.BundleMeta`),
  ``onnx/`` (``model.onnx`` + ``manifest.json``, when the export passed parity),
  ``native/`` (a tree ensemble compiled to ``model.so`` + ``manifest.json``, when
  a C compiler was there and it passed parity; batch scoring only);
- monitoring: ``profile.json`` (reference profile), ``reference.parquet`` (a
  sample of training rows), ``outliers.joblib`` (the outlier model, optional);
- evidence: ``evaluation.json``, ``blessing.json``, ``report.html`` /
  ``report.json``, ``lineage.json``, ``MODEL_CARD.md``.

The serving and monitoring parts are written first (the gate's infra check
runs on exactly those files), then the evidence, into the same staging folder:
one bundle is one artifact.

Example:
    >>> bundle = Bundle.open(store.path(version.bundle_id))
    >>> bundle.meta().features
    ['month', 'carrier', 'distance']
    >>> model = bundle.load_model()
    >>> bundle.verify(version.bundle_id)   # raises when a file was changed
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.artifacts import Blessing, BundleMeta, Evaluation, Profile
from mlcycle.errors import BadInput, NotFound
from mlcycle.schema import Schema

#: Rows of training data kept as the monitoring reference sample.
REFERENCE_ROWS = 50_000

# The file names, spelled here and nowhere else.
MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
META_FILE = "meta.json"
PROFILE_FILE = "profile.json"
REFERENCE_FILE = "reference.parquet"
OUTLIERS_FILE = "outliers.joblib"
ONNX_DIR = "onnx"
ONNX_MODEL_FILE = "model.onnx"
ONNX_MANIFEST_FILE = "manifest.json"
ONNX_PARITY_FILE = "parity.json"
NATIVE_DIR = "native"
NATIVE_LIB_FILE = "model.so"
NATIVE_MANIFEST_FILE = "manifest.json"
EVALUATION_FILE = "evaluation.json"
BLESSING_FILE = "blessing.json"
REPORT_HTML_FILE = "report.html"
REPORT_JSON_FILE = "report.json"
LINEAGE_FILE = "lineage.json"
CARD_FILE = "MODEL_CARD.md"

#: What the serving code needs to load a bundle.
SERVING_FILES = (MODEL_FILE, SCHEMA_FILE, META_FILE)

# A store folder is named by its content id (the sha256 of its files, see
# ``hashing.py:hash_dir``), so such a folder can be checked with no registry.
_CONTENT_ID_RE = re.compile(r"[0-9a-f]{64}")


def is_content_id(text: str) -> bool:
    """True when ``text`` has the shape of a content id (64 lowercase hex digits)."""
    return bool(_CONTENT_ID_RE.fullmatch(text))


# A model name becomes a path segment (the prediction log's ``<root>/<model>/``): the
# same rule as the spec's ``project`` name (no slash, no leading dot, so no '..'), capped at
# what a file system takes for one name.
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def check_model_name(name: object, where: str = "") -> str:
    """``name`` when it is a safe model name; :class:`BadInput` otherwise.

    ``where`` says where the name came from (e.g. the bundle's meta.json).

    Example:
        >>> check_model_name("flights")
        'flights'
        >>> check_model_name("../../escaped")   # raises BadInput
    """
    if isinstance(name, str) and _MODEL_NAME_RE.fullmatch(name):
        return name
    raise BadInput(
        f"model name {name!r}{f' in {where}' if where else ''} is not allowed",
        "a model name becomes a folder name (the prediction log keeps <root>/<model>/): "
        "it must be 1-255 letters, digits, '_', '.' or '-', starting with a letter or digit",
        "rename the model (`project:` in mlcycle.yaml) and register it again",
    )


class Bundle:
    """A bundle folder: the paths of its parts, typed readers and writers, verification.

    Readers raise :class:`~mlcycle.errors.BadInput` naming the file when a
    part is missing or unreadable. Writers are for a staging folder the store
    then commits whole (see :meth:`create`).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: str | Path) -> Bundle:
        """The bundle in ``folder``; :class:`NotFound` when it is not a bundle folder.

        Example:
            >>> Bundle.open("path/to/bundle").meta().name
            'flights'
        """
        path = Path(folder)
        if not path.is_dir():
            raise NotFound(
                f"model bundle {path} not found",
                "no such folder",
                "pass a bundle folder or a models:/NAME@ALIAS reference",
            )
        bundle = cls(path)
        missing = [name for name in SERVING_FILES if not (path / name).is_file()]
        if missing:
            raise BadInput(
                f"{path} is not a model bundle",
                f"it lacks {', '.join(missing)}",
                f"a bundle folder holds {', '.join(SERVING_FILES)}; "
                "pass one written by `mlcycle run`",
            )
        return bundle

    @staticmethod
    def looks_like(folder: str | Path) -> bool:
        """True when ``folder`` holds a bundle's meta file (a cheap test, no parsing)."""
        return (Path(folder) / META_FILE).is_file()

    @classmethod
    def create(cls, folder: Path) -> Bundle:
        """A bundle to be written into ``folder`` (an empty staging folder)."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder)

    # --- paths --------------------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def schema_path(self) -> Path:
        return self.folder / SCHEMA_FILE

    @property
    def meta_path(self) -> Path:
        return self.folder / META_FILE

    @property
    def profile_path(self) -> Path:
        return self.folder / PROFILE_FILE

    @property
    def reference_path(self) -> Path:
        return self.folder / REFERENCE_FILE

    @property
    def outliers_path(self) -> Path:
        return self.folder / OUTLIERS_FILE

    @property
    def onnx_dir(self) -> Path:
        return self.folder / ONNX_DIR

    @property
    def onnx_model_path(self) -> Path:
        return self.onnx_dir / ONNX_MODEL_FILE

    @property
    def onnx_manifest_path(self) -> Path:
        return self.onnx_dir / ONNX_MANIFEST_FILE

    @property
    def native_dir(self) -> Path:
        return self.folder / NATIVE_DIR

    @property
    def native_lib_path(self) -> Path:
        return self.native_dir / NATIVE_LIB_FILE

    @property
    def native_manifest_path(self) -> Path:
        return self.native_dir / NATIVE_MANIFEST_FILE

    @property
    def evaluation_path(self) -> Path:
        return self.folder / EVALUATION_FILE

    @property
    def blessing_path(self) -> Path:
        return self.folder / BLESSING_FILE

    @property
    def report_html_path(self) -> Path:
        return self.folder / REPORT_HTML_FILE

    @property
    def report_json_path(self) -> Path:
        return self.folder / REPORT_JSON_FILE

    @property
    def lineage_path(self) -> Path:
        return self.folder / LINEAGE_FILE

    @property
    def card_path(self) -> Path:
        return self.folder / CARD_FILE

    # --- readers ------------------------------------------------------------------------

    def meta(self) -> BundleMeta:
        return BundleMeta.model_validate_json(self._text(self.meta_path))

    def schema(self) -> Schema:
        return Schema.model_validate_json(self._text(self.schema_path))

    def profile(self) -> Profile:
        return Profile.model_validate_json(self._text(self.profile_path))

    def evaluation(self) -> Evaluation:
        return Evaluation.model_validate_json(self._text(self.evaluation_path))

    def blessing(self) -> Blessing:
        return Blessing.model_validate_json(self._text(self.blessing_path))

    def lineage(self) -> dict[str, Any]:
        """The lineage record; empty for a bundle written without one."""
        if not self.lineage_path.is_file():
            return {}
        return dict(json.loads(self._text(self.lineage_path)))

    def reference(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The reference sample of training rows (``columns`` only, when given)."""
        if not self.reference_path.is_file():
            raise BadInput(
                f"model bundle {self.folder} has no reference sample",
                f"{REFERENCE_FILE} is missing",
                "re-register the model with `mlcycle run --force`",
            )
        return pd.read_parquet(self.reference_path, columns=columns)

    def load_model(self) -> Any:
        """The fitted scikit-learn pipeline (unpickled: open only bundles you trust)."""
        import joblib

        if not self.model_path.is_file():
            raise BadInput(
                f"{MODEL_FILE} not found in model bundle {self.folder}",
                f"a bundle folder holds {', '.join(SERVING_FILES)}",
                "pass a bundle written by `mlcycle run`",
            )
        return joblib.load(self.model_path)

    def has_onnx(self) -> bool:
        return self.onnx_model_path.is_file() and self.onnx_manifest_path.is_file()

    def _text(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadInput(
                f"{path.name} not found in model bundle {self.folder}",
                f"a bundle folder holds {', '.join(SERVING_FILES)}",
                "pass a bundle written by `mlcycle run`",
            ) from None

    # --- writers (into a staging folder) ------------------------------------------------

    def write_serving(
        self,
        *,
        model_file: Path,
        schema: Schema,
        meta: BundleMeta,
        profile: Profile,
        reference: pd.DataFrame,
        seed: int = 0,
    ) -> None:
        """The files serving and monitoring load: model, contract, meta, reference profile/sample.

        ``reference`` is sampled down to :data:`REFERENCE_ROWS` rows (with ``seed``).
        """
        shutil.copyfile(model_file, self.model_path)
        self.schema_path.write_text(schema.model_dump_json(indent=1), encoding="utf-8")
        self.meta_path.write_text(meta.model_dump_json(indent=1), encoding="utf-8")
        self.profile_path.write_text(profile.model_dump_json(), encoding="utf-8")
        if len(reference) > REFERENCE_ROWS:
            reference = reference.sample(REFERENCE_ROWS, random_state=seed).sort_index()
        reference.reset_index(drop=True).to_parquet(self.reference_path, index=False)

    def write_evidence(
        self,
        *,
        evaluation: Evaluation,
        blessing: Blessing,
        card: str,
        lineage: dict[str, Any] | None = None,
        report_html: str | None = None,
        report_json: str | None = None,
    ) -> None:
        """The evidence beside the serving files: evaluation, verdict, report, card, lineage."""
        self.evaluation_path.write_text(evaluation.model_dump_json(indent=1), encoding="utf-8")
        self.blessing_path.write_text(blessing.model_dump_json(indent=1), encoding="utf-8")
        if lineage is not None:
            self.lineage_path.write_text(
                json.dumps(lineage, indent=1, sort_keys=True, default=str), encoding="utf-8"
            )
        if report_html is not None:
            self.report_html_path.write_text(report_html, encoding="utf-8")
        if report_json is not None:
            self.report_json_path.write_text(report_json, encoding="utf-8")
        self.card_path.write_text(card, encoding="utf-8")

    # --- verification -------------------------------------------------------------------

    def content_id(self) -> str:
        """The content id of the folder, as the store computes it."""
        from mlcycle.hashing import hash_dir  # not the store's module: it pulls in SQLAlchemy

        return hash_dir(self.folder)[0]

    def verify(self, expected_id: str) -> None:
        """Raise :class:`BadInput` unless the folder's content still hashes to ``expected_id``.

        Example:
            >>> Bundle.open(store.path(bundle_id)).verify(bundle_id)
        """
        actual = self.content_id()
        if actual != expected_id:
            raise BadInput(
                f"model bundle {self.folder} was changed after it was registered",
                f"its content hashes to {actual[:12]}, not {expected_id[:12]}",
                "restore the bundle (or delete it and run `mlcycle run --force`)",
            )

    def verify_addressed(self) -> str | None:
        """Verify a folder named by its content id (as in the store); return that id.

        A folder with any other name has no id to check against: it is trusted
        as given and ``None`` is returned. Nothing in the folder is deserialized.

        Example:
            >>> Bundle(store.path(bundle_id)).verify_addressed() == bundle_id
            True
        """
        name = self.folder.resolve().name
        if not is_content_id(name):
            return None
        self.verify(name)
        return name

    def __repr__(self) -> str:
        return f"Bundle({str(self.folder)!r})"
