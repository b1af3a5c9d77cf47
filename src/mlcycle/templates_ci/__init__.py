"""What ``mlcycle init --ci github`` writes: a GitHub Actions workflow and a serving image.

The files are package data next to this module, with ``@@NAME@@`` placeholders
(GitHub's own ``${{ … }}`` expressions rule out ``$``- or ``{}``-templates).
:func:`ci_files` renders them; the CLI decides what may be written where.

- ``github-workflow.yml`` → ``.github/workflows/mlcycle.yml``: install → tests →
  ``mlcycle run`` → the gate decides → the serving image, pushed only for a
  blessed champion.
- ``Dockerfile`` → ``deploy/Dockerfile``: slim (mlcycle's ``serve`` extra), non-root,
  ONNX Runtime (for the bundle's ONNX export), a healthcheck on ``/v2/health/ready``,
  the bundle baked in under its content id.
  From its ``bundle`` stage on it is the repository's own ``deploy/Dockerfile``.

Example:
    >>> files = ci_files("github", project="churn")
    >>> sorted(files)
    ['.github/workflows/mlcycle.yml', 'deploy/.gitignore', 'deploy/Dockerfile']
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files

from mlcycle.errors import BadInput
from mlcycle.version import __version__

#: ``--ci`` values and the files each writes (target path → template).
PROVIDERS: dict[str, dict[str, str]] = {
    "github": {
        ".github/workflows/mlcycle.yml": "github-workflow.yml",
        "deploy/Dockerfile": "Dockerfile",
        "deploy/.gitignore": "deploy.gitignore",
    },
}
#: The line where the part every serving Dockerfile shares begins.
RUNTIME_STAGE = "# Everything from here on is the same in every mlcycle serving Dockerfile."
_PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")
_NOT_IN_IMAGE_NAME = re.compile(r"[^a-z0-9._-]+")


def template(name: str) -> str:
    """The raw text of one template file (placeholders not filled in).

    Example:
        >>> "HEALTHCHECK" in template("Dockerfile")
        True
    """
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def image_name(project: str) -> str:
    """A container image name for the project (lower case, as registries require).

    Example:
        >>> image_name("Churn Model")
        'churn-model'
    """
    name = _NOT_IN_IMAGE_NAME.sub("-", project.lower()).strip("-._")
    return name or "model"


def onnxruntime_requirement() -> str:
    """ONNX Runtime for the image: the version installed here (the one parity was seen
    with), else the ``onnx`` extra's lower bound.

    Example:
        >>> onnxruntime_requirement()
        'onnxruntime==1.32.0'
    """
    try:
        return f"onnxruntime=={version('onnxruntime')}"
    except PackageNotFoundError:
        return "onnxruntime>=1.19"


def ci_files(provider: str, *, project: str) -> dict[str, str]:
    """The files ``init --ci PROVIDER`` writes, as relative path → rendered text.

    Raises :class:`BadInput` for a provider mlcycle has no templates for.

    Example:
        >>> "mlcycle[serve]==" in ci_files("github", project="flights")["deploy/Dockerfile"]
        True
    """
    if provider not in PROVIDERS:
        raise BadInput(
            f"--ci {provider!r} is not supported",
            "mlcycle has CI templates for: " + ", ".join(PROVIDERS),
            "pass --ci github",
        )
    values = {
        "@@VERSION@@": __version__,
        "@@IMAGE@@": image_name(project),
        "@@ONNXRUNTIME@@": onnxruntime_requirement(),
    }
    rendered = {}
    for target, name in PROVIDERS[provider].items():
        text = template(name)
        for key, value in values.items():
            text = text.replace(key, value)
        left = _PLACEHOLDER.search(text)
        if left:  # a template with a placeholder nobody fills is a bug here, not user error
            raise RuntimeError(f"template {name} still holds {left.group()}")
        rendered[target] = text
    return rendered
