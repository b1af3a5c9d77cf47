"""Registry steps: register the gate's bundle as the next version, promote it when blessed.

The bundle is registered whether or not it was blessed: a refused model is
still a version anyone can inspect (``mlcycle models show NAME/N``) or force
out with a recorded reason. Only Promote depends on the verdict.
"""

from __future__ import annotations

from mlcycle.pipeline.catalog import Inputs
from mlcycle.pipeline.context import RunContext
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.registry.models import AliasConflict


class Register(Step):
    """The gate's bundle → the next version of the model (the bundle passes through)."""

    name = "register"
    inputs = ("bundle", "blessing")
    outputs = ("bundle",)
    sections = ("project",)
    revision = 3  # 3: the gate commits the bundle; register only registers it

    def still_valid(self, ctx: RunContext, result: StepResult) -> bool:
        bundle = result.outputs.get("bundle")
        return any(v.bundle_id == bundle for v in ctx.registry.versions(ctx.name))

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        blessed = inputs.blessing.blessed
        bundle_id = inputs.id("bundle")
        version = ctx.registry.register(ctx.name, bundle_id, blessed=blessed)
        return StepResult(
            {"bundle": bundle_id}, {"model": ctx.name, "version": version, "blessed": blessed}
        )


class Promote(Step):
    """A blessed version becomes the champion — unless someone deliberately moved it away.

    The result depends on live state (who the champion is), so a cached result
    holds only while the champion it reports still reigns. A version the
    champion was moved away from (``mlcycle models rollback``, or a promotion of
    another version) is not re-promoted: that move is a recorded decision, and a
    re-run of the pipeline must not undo it.
    """

    name = "promote"
    inputs = ("bundle", "blessing")
    sections = ("project",)
    revision = 2  # 2: a rolled-back version is not re-promoted; the summary is live state

    def skip_reason(self, ctx: RunContext, inputs: Inputs) -> str | None:
        blessing = inputs.blessing
        if blessing.blessed:
            return None
        return "not blessed: " + "; ".join(c.detail for c in blessing.failures)

    def still_valid(self, ctx: RunContext, result: StepResult) -> bool:
        if ctx.registry.alias_version(ctx.name, "champion") != result.summary.get("champion"):
            return False
        # Reused, this result promoted nothing in this run: drop what the original
        # run did ("previous") so the cached summary states only what holds now.
        result.summary.pop("previous", None)
        return True

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        registry = ctx.registry
        bundle_id = inputs.id("bundle")
        version = next(v.version for v in registry.versions(ctx.name) if v.bundle_id == bundle_id)
        current = registry.alias_version(ctx.name, "champion")
        if current == version:
            return StepResult({}, {"champion": version})
        moved = registry.moved_away_from(ctx.name, version)
        if moved is not None:
            return StepResult({}, {"champion": current, "note": moved})
        try:
            registry.promote(
                ctx.name,
                version,
                alias="champion",
                reason=f"blessed by the pipeline (blessing {inputs.id('blessing')[:12]})",
                expected=current,
            )
        except AliasConflict:
            # Someone moved the champion since this run judged against it: the
            # blessing no longer speaks for the new champion, so do not overrule it.
            return StepResult(
                {},
                {
                    "champion": registry.alias_version(ctx.name, "champion"),
                    "note": "champion moved meanwhile; not promoted",
                },
            )
        return StepResult({}, {"champion": version, "previous": current})
