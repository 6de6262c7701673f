"""The bench's report: a table per workload, the targets met or missed, and the JSON of it all."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from .workloads import Arm, Plan


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 100 else f"{value:.1f}"


def fmt_ratio(value: float | None, vs: str | None) -> str:
    if vs is None:
        return "baseline"
    return "-" if value is None else f"{value:.2f}x vs {vs}"


def render_plan(plan: Plan) -> str:
    """The workload's table: arm, median ms, p90 ms, ratio vs its baseline, modes seen, oracle in-run."""
    lines = [f"== {plan.name}: {plan.title}", f"   {plan.sizes.describe()}; {plan.note}"]
    if plan.error:
        lines.append(f"   ERROR: {plan.error}")
    width = max(len(a.name) for a in plan.arms)
    header = f"{'arm':<{width}}  {'median ms':>10}  {'p90 ms':>10}  {'ratio':<34} {'oracle':>6}  modes"
    lines.append(f"   {header}")
    for arm in plan.arms:
        if arm.unavailable or arm.error:
            lines.append(f"   {arm.name:<{width}}  {arm.unavailable or 'ERROR: ' + str(arm.error)}")
            continue
        modes = " ".join(f"{k}={v}" for k, v in arm.modes.items()) or "-"
        drift = "-" if arm.drift is None else str(arm.drift)
        lines.append(f"   {arm.name:<{width}}  {fmt_ms(arm.median):>10}  {fmt_ms(arm.p90):>10}"
                     f"  {fmt_ratio(arm.ratio, arm.vs):<34} {drift:>6}  {modes}")
    if plan.throughput:
        width = max(len(t.name) for t in plan.throughput)
        lines.append(f"   {'throughput':<{width}}  {'commits/s':>10}  {'errors':>10}  ratio")
        for job in plan.throughput:
            rate = "-" if job.per_second is None else f"{job.per_second:.0f}"
            ratio = fmt_ratio(job.ratio, job.vs)
            lines.append(f"   {job.name:<{width}}  {rate:>10}  {job.errors:>10}  {ratio}")
    if plan.oracle:
        lines.append("   oracle after the runs (rows differing from the definition): "
                     + ", ".join(f"{k} {v}" for k, v in plan.oracle.items()))
    if plan.hand_oracle:
        lines.append("   hand-kept table after the runs (not the engine; rows differing from its view): "
                     + ", ".join(f"{k} {v}" for k, v in plan.hand_oracle.items()))
    lines.append(f"   ({plan.seconds:.1f} s including the build)")
    return "\n".join(lines)


@dataclass(frozen=True)
class Goal:
    """A target: value(numerator) / value(denominator) compared with a limit."""

    label: str
    workload: str
    numerator: str
    denominator: str
    op: str          # ">=" or "<="
    limit: float


GOALS = [
    Goal("medium cascade: TVIEW recompute / TVIEW patch", "medium", "TVIEW recompute", "TVIEW patch",
         ">=", 2.0),
    Goal("large cascade: per-key / set-based", "large_cascade", "per-key", "set-based", ">=", 5.0),
    Goal("bulk insert with TVIEWs / bare", "bulk", "TVIEW insert", "bare insert", "<=", 3.0),
    Goal("bulk delete with TVIEWs / bare", "bulk", "TVIEW delete", "bare delete", "<=", 20.0),
    Goal("REFRESH MATERIALIZED VIEW / engine single-row", "full_refresh", "REFRESH MATERIALIZED VIEW",
         "engine single-row", ">=", 100.0),
    *(goal for workload, scale in (("versus_hand", "default scale"), ("scale_m", "scale M")) for goal in (
        Goal(f"{scale} leaf: engine / hand trigger", workload, "engine leaf", "hand trigger leaf", "<=", 1.1),
        Goal(f"{scale} parent: engine / hand trigger", workload, "engine parent", "hand trigger parent",
             "<=", 1.1),
        Goal(f"{scale} leaf: composed with patching / hand trigger", workload, "composed patch leaf",
             "hand trigger leaf", "<=", 1.0 if workload == "versus_hand" else 0.7),
        Goal(f"{scale} parent: composed with patching / hand trigger", workload, "composed patch parent",
             "hand trigger parent", "<=", 0.3))),
    Goal("scale M leaf: composed with patching / bare write", "scale_m", "composed patch leaf", "bare leaf",
         "<=", 8.0),
    Goal("scale M 4 clients: engine / hand trigger commits/s", "scale_m", "engine, 4 clients",
         "hand trigger, 4 clients", ">=", 1.0),
]
COSTS = [
    ("row locks: on / off", "locking", "row_locks on", "row_locks off"),
    ("events: notify on / off", "events", "notify on", "notify off"),
    ("single row: TVIEW patch / TVIEW recompute", "single_row", "TVIEW patch", "TVIEW recompute"),
    ("scale M 4 clients: engine with tview.notify = off / hand trigger commits/s", "scale_m",
     "engine, events off, 4 clients", "hand trigger, 4 clients"),
    ("scale M 4 clients: engine with tview.notify = auto, nobody listening / hand trigger commits/s", "scale_m",
     "engine, notify auto, 4 clients", "hand trigger, 4 clients"),
]


def engine_drift(plans: dict[str, Plan]) -> dict[str, int]:
    """Every non-zero oracle of the engine: after the runs, and inside each arm's transaction."""
    drift = {k: v for p in plans.values() for k, v in p.oracle.items() if v}
    return drift | {f"{p.name}/{a.name}": a.drift for p in plans.values() for a in p.arms if a.drift}


def oracle_line(plans: dict[str, Plan]) -> str:
    checked = sum(len(p.oracle) for p in plans.values())
    failed = [p.name for p in plans.values() if p.error]
    drift = engine_drift(plans)
    text = ("oracle: DRIFT " + ", ".join(f"{k}: {v}" for k, v in drift.items()) if drift
            else f"oracle: 0 rows differ from their definitions ({checked} TVIEWs checked after the runs)")
    return text + (f"; not checked: {', '.join(failed)} failed" if failed else "")


def unavailable_reason(plan: Plan, *names: str) -> str | None:
    for arm in plan.arms:
        if arm.name in names and (arm.unavailable or arm.error):
            return arm.unavailable or f"{arm.name} {arm.error}"
    return plan.error and "workload failed"


def summary_lines(plans: dict[str, Plan]) -> list[str]:
    """One line per target (and the measured costs), for the workloads that ran."""
    lines = []
    for goal in GOALS:
        plan = plans.get(goal.workload)
        if plan is None:
            continue
        values = plan.values()
        num, den = values.get(goal.numerator), values.get(goal.denominator)
        target = f"(target {goal.op} {goal.limit:g}x)"
        if not num or not den:
            reason = unavailable_reason(plan, goal.numerator, goal.denominator)
            lines.append(f"{goal.label} = n/a: {reason} {target}")
            continue
        ratio = num / den
        met = ratio >= goal.limit if goal.op == ">=" else ratio <= goal.limit
        lines.append(f"{goal.label} = {ratio:.2f}x {target} {'met' if met else 'MISSED'}")
    for label, workload, num_name, den_name in COSTS:
        plan = plans.get(workload)
        if plan is None:
            continue
        values = plan.values()
        num, den = values.get(num_name), values.get(den_name)
        text = f"{num / den:.2f}x" if num and den else f"n/a: {unavailable_reason(plan, num_name, den_name)}"
        lines.append(f"{label} = {text} (measured cost, no target)")
    lines.append(oracle_line(plans))
    hand = {k: v for p in plans.values() for k, v in p.hand_oracle.items()}
    if hand:
        lines.append("hand trigger (for comparison, not the engine): "
                     + ", ".join(f"{k} differs from its view in {v} row(s)" for k, v in hand.items()))
    return lines


def results_json(plans: dict[str, Plan], meta: dict, summary: list[str]) -> dict:
    """Everything measured, raw samples included, for scripts and later comparison."""
    def arm_dict(arm: Arm) -> dict:
        return asdict(arm) | {"median_ms": arm.median, "p90_ms": arm.p90}
    return meta | {"summary": summary, "workloads": [
        {k: v for k, v in asdict(p).items() if k not in ("arms",)} | {"arms": [arm_dict(a) for a in p.arms]}
        for p in plans.values()]}


def print_header(args: argparse.Namespace, server: str, engine: str, patching: bool) -> None:
    """What was measured where, and how to read the tables, so a pasted table stands on its own."""
    print(f"tview-tui bench: PostgreSQL {server}, engine {engine}, scale {args.scale:g}"
          f"{' (quick sizes)' if args.quick else ''}, {args.repeat} runs per arm, arms alternate;"
          f" smart patching: {'present' if patching else 'not implemented'}")
    print("ratio: median / median of the named baseline; oracle: rows differing from the definition"
          " inside the arm's own transaction; modes: how each TVIEW was maintained\n", flush=True)
