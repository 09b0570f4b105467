"""Where each actor goes: the Ray bundles a config asks for, and whether a cluster can hold them.

One plan serves two callers: `pvg submit` checks it against the cluster's nodes before a job is
created, and the driver checks it against `ray.nodes()` before it asks for placement groups, so a
config that asks for more than the cluster has fails at once with what was asked and what exists.

Each group (prover, verifier) gets its own placement group, one bundle per actor, placed by
`resources.placement_strategy`. With `resources.colocate` the verifier's actors go into the
prover's bundles instead: their phases alternate, so they can share GPUs (each takes half of the
bundle's GPU, and both see the same device) and a node's CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvg.config import ResourcesConfig
from pvg.errors import PvgError

KINDS = ("CPU", "GPU")


@dataclass(frozen=True)
class Slot:
    """One actor: which placement group (named by its group), which bundle, what it reserves there."""

    group: str
    bundle: int
    cpus: float
    gpus: float
    threads: int  # torch's intra-op threads in the actor


def _threads(g) -> int:
    return g.torch_threads or max(1, int(g.cpus_per_actor))


@dataclass(frozen=True)
class Plan:
    bundles: dict[str, list[dict[str, float]]]  # placement group name -> its bundles
    slots: dict[str, list[Slot]]  # "prover" / "verifier" -> one slot per actor
    strategy: str


def plan(res: ResourcesConfig) -> Plan:
    p, v = res.prover, res.verifier
    if not res.colocate:
        bundles = {name: [{"CPU": float(g.cpus_per_actor), "GPU": float(g.gpus_per_actor)}] * g.actors
                   for name, g in (("prover", p), ("verifier", v))}
        slots = {name: [Slot(name, i, g.cpus_per_actor, g.gpus_per_actor, _threads(g)) for i in range(g.actors)]
                 for name, g in (("prover", p), ("verifier", v))}
        return Plan(bundles, slots, res.placement_strategy)
    merged = []
    for i in range(p.actors):
        shared = i < v.actors
        merged.append({"CPU": float(p.cpus_per_actor + (v.cpus_per_actor if shared else 0)),
                       "GPU": float(max(p.gpus_per_actor, v.gpus_per_actor if shared else 0))})
    prover = [Slot("prover", i, p.cpus_per_actor, b["GPU"] / 2 if i < v.actors else b["GPU"], _threads(p))
              for i, b in enumerate(merged)]
    verifier = [Slot("prover", i, v.cpus_per_actor, merged[i]["GPU"] / 2, _threads(v)) for i in range(v.actors)]
    return Plan({"prover": merged}, {"prover": prover, "verifier": verifier}, res.placement_strategy)


def _fmt(res: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in res.items() if v or k == "CPU")


def _fmt_bundles(bundles: list[dict]) -> str:
    """`2 x {CPU=4, GPU=1}`, or `1 x {CPU=6, GPU=1} + 1 x {CPU=4, GPU=1}` when they differ (colocate)."""
    counts: dict[str, int] = {}
    for b in bundles:
        counts[_fmt(b)] = counts.get(_fmt(b), 0) + 1
    return " + ".join(f"{n} x {{{s}}}" for s, n in counts.items())


def check_fits(res: ResourcesConfig, nodes: list[dict], where: str) -> None:
    """Raise a PvgError naming what the config asks for and what the cluster has, if it cannot be placed.

    `nodes`: each alive node's total resources (`{"CPU": 8, "GPU": 2, ...}`); `where` names the
    cluster in the message ("the cluster at http://head:8265").
    """
    pl = plan(res)
    caps = [{k: float(n.get(k, 0)) for k in KINDS} for n in nodes]
    total = {k: sum(c[k] for c in caps) for k in KINDS}
    asked = {k: sum(b[k] for bs in pl.bundles.values() for b in bs) for k in KINDS}
    fits = lambda need, cap: all(need[k] <= cap[k] + 1e-9 for k in need)  # noqa: E731
    problems = [f"{asked[k]:g} {k} in all but the cluster has {total[k]:g}" for k in KINDS if asked[k] > total[k] + 1e-9]
    label = "resources.prover+verifier (colocate)" if res.colocate else None
    for name, bundles in pl.bundles.items():
        key = label or f"resources.{name}"
        for b in {tuple(b.items()): b for b in bundles}.values():
            if not problems and not any(fits(b, c) for c in caps):
                problems.append(f"{key} needs {_fmt(b)} on one node and no node has that")
        if pl.strategy == "STRICT_PACK":
            whole = {k: sum(b[k] for b in bundles) for k in KINDS}
            if not any(fits(whole, c) for c in caps):
                problems.append(f"{key} needs {_fmt(whole)} on one node (STRICT_PACK) and no node has that")
        biggest = max(bundles, key=lambda b: (b["GPU"], b["CPU"]))
        if pl.strategy == "STRICT_SPREAD" and sum(fits(biggest, c) for c in caps) < len(bundles):
            problems.append(f"{key} needs {len(bundles)} different nodes, each with room for {_fmt(biggest)} "
                            "(STRICT_SPREAD)")
    if not problems:
        return
    ask = "; ".join(f"{name} {_fmt_bundles(bs)}" for name, bs in pl.bundles.items())
    have = "; ".join(f"{{{_fmt(c)}}}" for c in sorted(caps, key=lambda c: (-c["GPU"], -c["CPU"])))
    raise PvgError(
        f"{where} cannot place this config: {', '.join(problems)}. Asked: {ask} "
        f"(CPU={asked['CPU']:g}, GPU={asked['GPU']:g} in all). The cluster has CPU={total['CPU']:g}, "
        f"GPU={total['GPU']:g} on {len(caps)} node{'s' if len(caps) != 1 else ''}: {have}. Lower "
        "resources.*.gpus_per_actor / cpus_per_actor or add nodes (resources.precheck=false, or "
        "--no-resource-check for pvg submit, on an autoscaling cluster)"
    )
