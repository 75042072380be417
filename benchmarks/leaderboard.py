"""The leaderboard: Markdown and HTML (sortable tables, SVG ROC and reliability plots) from one run of the store.

Ranking: by **TPR at 1% FPR on unseen generators**. When the run has the ``third_party`` protocol (``--external
DIR``), the ranking is its mean over the third-party sets (synthetic set x real counterpart): generators that *no*
detector trained on, the shipped ones included, so every detector is ranked on the same sets. Otherwise it is the
mean over every task whose test fakes come from generators the detector did not train on (leave-one-generator-out,
GAN -> diffusion, cross-modality); pre-trained detectors whose training covers every bundled generator cannot be
measured there and are listed after the ranked ones. AUC is shown but does not rank
(research/generalization_probe.md, lesson 4). Beside every detector: the worst share of third-party real
counterparts flagged at its shipped threshold and the shortcut controls' flag rates (real images only - lower is
better).
"""

from __future__ import annotations

import math
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

from benchmarks.store import ResultStore

#: Our detectors, in the order the "where we stand" comparison prefers them.
OURS = ("suite", "suite.retrained", "frequency.retrained", "frequency", "cnn")
BASELINES = ("durall", "frank_dct", "dzanic", "npr", "cnndetection")
TABLE_METRICS = ("auc", "ap", "eer", "tpr@1%fpr", "tpr@5%fpr", "tpr@thr", "fpr@thr", "bacc@0.5", "bacc@val", "ece")
PROTOCOL_TITLES = {
    "in_distribution": "In-distribution (format-matched)",
    "leave_one_generator_out": "Leave one generator out (unseen generator)",
    "gan_to_diffusion": "GAN -> diffusion transfer",
    "cross_modality": "Cross-modality (train chest X-ray, test CT)",
    "third_party": "Third-party generators (never trained on by any detector)",
}


def _f(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _ci(r: dict[str, Any] | None, digits: int = 3) -> str:
    if r is None:
        return "–"
    if math.isnan(r["lo"]):
        return _f(r["value"], digits)
    return f"{_f(r['value'], digits)} [{_f(r['lo'], 2)}, {_f(r['hi'], 2)}]"


def collect(store: ResultStore, run_id: str) -> dict[str, Any]:
    """Everything the renderers need, from one run."""
    rows = store.results(run_id)
    run = store.run(run_id)
    by = {}
    detectors: list[str] = []
    for r in rows:
        by[(r["detector"], r["protocol"], r["subset"], r["perturbation"], r["metric"])] = r
        if r["detector"] not in detectors:
            detectors.append(r["detector"])
    tasks: list[tuple[str, str]] = []
    for r in rows:
        t = (r["protocol"], r["subset"])
        if r["perturbation"] == "none" and t not in tasks:
            tasks.append(t)
    tasks.sort(key=lambda t: (list(PROTOCOL_TITLES).index(t[0]) if t[0] in PROTOCOL_TITLES else 99, t[1]))
    perts = sorted({r["perturbation"] for r in rows if r["perturbation"] not in ("none",)
                    and not r["perturbation"].startswith("control:")})
    controls = sorted({r["perturbation"] for r in rows if r["perturbation"].startswith("control:")},
                      key=lambda c: (c != "control:none", c))
    board = []
    for d in detectors:
        unseen = [r for r in rows if r["detector"] == d and r["metric"] == "tpr@1%fpr" and r["perturbation"] == "none"
                  and r["unseen"] == 1]
        seen_only = any(r["detector"] == d and r["unseen"] == 0 for r in rows)
        vals = [r["value"] for r in unseen if not math.isnan(r["value"]) and r["protocol"] != "third_party"]
        tp = [r for r in rows if r["detector"] == d and r["protocol"] == "third_party" and r["perturbation"] == "none"]
        tp1 = [r["value"] for r in tp if r["metric"] == "tpr@1%fpr" and not math.isnan(r["value"])]
        tpf = [r["value"] for r in tp if r["metric"] == "fpr@thr" and not math.isnan(r["value"])]
        board.append({
            "detector": d,
            "ours": d in OURS,
            "version": next((r["version"] for r in rows if r["detector"] == d), ""),
            "weights_hash": next((r["weights_hash"] for r in rows if r["detector"] == d), ""),
            "unseen_tpr1": sum(vals) / len(vals) if vals else float("nan"),
            "unseen_min": min(vals) if vals else float("nan"),
            "unseen_tasks": len(vals),
            "not_rankable": (not vals) and seen_only,
            "tp_tpr1": sum(tp1) / len(tp1) if tp1 else float("nan"),
            "tp_min": min(tp1) if tp1 else float("nan"),
            "tp_sets": len(tp1),
            "tp_real_flagged": max(tpf) if tpf else float("nan"),
            "id": {m: by.get((d, "in_distribution", "all", "none", m)) for m in TABLE_METRICS},
            "controls": {c: by.get((d, "in_distribution", "all", c, "flag_rate")) for c in controls},
            "fit_s": by.get((d, "in_distribution", "all", "none", "fit_s")),
            "ms": by.get((d, "in_distribution", "all", "none", "ms_per_image")),
        })
    rank_key = "tp_tpr1" if any(b["tp_sets"] for b in board) else "unseen_tpr1"
    ranked = sorted([b for b in board if not math.isnan(b[rank_key])], key=lambda b: -b[rank_key])
    rest = sorted([b for b in board if math.isnan(b[rank_key])],
                  key=lambda b: -(b["id"]["tpr@1%fpr"] or {"value": -1})["value"])
    for i, b in enumerate(ranked, 1):
        b["rank"] = i
    for b in rest:
        b["rank"] = None
    curves = defaultdict(list)
    for c in store.curves(run_id, perturbation="none"):
        curves[(c["protocol"], c["subset"], c["kind"])].append((c["detector"], c["points"]))
    return {"run": run, "rows": rows, "by": by, "detectors": detectors, "tasks": tasks, "perturbations": perts,
            "ranked_by": "third_party" if rank_key == "tp_tpr1" else "unseen",
            "controls": controls, "board": ranked + rest, "curves": curves, "skipped": store.skipped(run_id)}


def standing(data: dict[str, Any], metric: str = "tpr@1%fpr") -> list[dict[str, Any]]:
    """Per task: our best-preferred detector's value vs each baseline's (win / lose / tie within 0.005)."""
    out = []
    for proto, subset in data["tasks"]:
        ours = next((d for d in OURS if (d, proto, subset, "none", metric) in data["by"]
                     and (proto == "in_distribution" or data["by"][(d, proto, subset, "none", metric)]["unseen"])),
                    None)
        if ours is None:
            continue
        ov = data["by"][(ours, proto, subset, "none", metric)]["value"]
        cmp = {}
        for b in BASELINES:
            r = data["by"].get((b, proto, subset, "none", metric))
            if r is None or math.isnan(r["value"]) or math.isnan(ov):
                continue
            diff = ov - r["value"]
            cmp[b] = {"value": r["value"], "verdict": "tie" if abs(diff) < 0.005 else ("win" if diff > 0 else "lose")}
        out.append({"protocol": proto, "subset": subset, "ours": ours, "value": ov, "baselines": cmp})
    return out


# ---------------------------------------------------------------------------------------------- markdown
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_leaderboard_md(data: dict[str, Any]) -> str:
    ctl = [c for c in data["controls"] if c != "control:none"]
    third = data.get("ranked_by") == "third_party"
    header = (["rank", "detector"] + (["TPR@1%FPR third-party (mean / worst)", "third-party reals flagged (worst)"]
                                      if third else [])
              + ["TPR@1%FPR unseen (mean / worst)", "in-dist AUC", "in-dist TPR@1%FPR", "TPR / FPR at shipped thr",
                 "ECE", "real flagged"] + [f"flag {c[8:]}" for c in ctl] + ["fit s"])
    rows = []
    for b in data["board"]:
        tp = ([f"{_f(b['tp_tpr1'])} / {_f(b['tp_min'])} ({b['tp_sets']} sets)" if b["tp_sets"] else "n/a",
               _f(b["tp_real_flagged"], 2)] if third else [])
        name = f"**{b['detector']}** (ours)" if b["ours"] else b["detector"]
        if math.isnan(b["unseen_tpr1"]):
            un = "not measurable (trained on all generators)" if b["not_rankable"] else "n/a"
        else:
            un = f"{_f(b['unseen_tpr1'])} / {_f(b['unseen_min'])} ({b['unseen_tasks']} tasks)"
        idm = b["id"]
        thr = (f"{_f(idm['tpr@thr']['value'], 2)} / {_f(idm['fpr@thr']['value'], 2)}" if idm["tpr@thr"] else "–")
        rows.append([str(b["rank"] or "–"), name, *tp, un, _ci(idm["auc"]), _ci(idm["tpr@1%fpr"]), thr,
                     _ci(idm["ece"]) if idm["ece"] else "–",
                     _ci(b["controls"].get("control:none"), 2) if b["controls"].get("control:none") else "–"]
                    + [_f(b["controls"][c]["value"], 2) if b["controls"].get(c) else "–" for c in ctl]
                    + [_f(b["fit_s"]["value"], 0) if b["fit_s"] else "–"])
    text = _md_table(header, rows)
    if third:
        text += ("\n\nRanked by TPR at 1% FPR on the third-party sets (mean over synthetic set x real counterpart "
                 "pairs of covered modalities; worst after the slash): generators no detector here trained on. "
                 "*third-party reals flagged*: the largest share of a real counterpart at or above the detector's "
                 "shipped threshold. The unseen column beside it is the bundled-generator figure.")
    text += ("\n\n" + ("*TPR@1%FPR unseen*: " if third else "Ranked by ")
             + "TPR at 1% FPR on generators absent from training (mean over tasks; worst task after the "
             "slash), not by AUC. *real flagged*: share of real test images at or above the detector's shipped "
             "threshold; *flag X*: the same after a shortcut control X (nativeN: down to a generator's native N px "
             "and back; noise: Gaussian sigma 0.02; jpeg50: re-compressed) - a detector that flags those detects "
             "processing, not synthesis. Intervals: 95% stratified bootstrap.")
    if data["skipped"]:
        text += "\n\nNot on the board: " + "; ".join(f"`{s['detector']}` ({s['reason']})" for s in data["skipped"])
    return text


def render_protocols_md(data: dict[str, Any]) -> str:
    parts = []
    st = standing(data)
    if st:
        header = ["protocol", "task", "ours (detector)"] + list(BASELINES)
        rows = []
        for s in st:
            cells = []
            for b in BASELINES:
                c = s["baselines"].get(b)
                mark = {"win": "we win", "lose": "**we lose**", "tie": "tie"}[c["verdict"]] if c else ""
                cells.append(f"{_f(c['value'], 2)} ({mark})" if c else "–")
            rows.append([s["protocol"], s["subset"], f"{_f(s['value'], 2)} ({s['ours']})"] + cells)
        parts.append("### Where our suite stands (TPR at 1% FPR; each baseline's value and whether ours beats it)\n\n"
                     + _md_table(header, rows))
    for proto, subset in data["tasks"]:
        header = ["detector"] + list(TABLE_METRICS) + ["n real / fake"]
        rows = []
        for d in data["detectors"]:
            rs = [data["by"].get((d, proto, subset, "none", m)) for m in TABLE_METRICS]
            if not any(rs):
                continue
            n = next(r for r in rs if r)
            seen = " †" if n["unseen"] == 0 else ""
            rows.append([d + seen] + [_ci(r) for r in rs] + [f"{n['n_real']} / {n['n_fake']}"])
        title = PROTOCOL_TITLES.get(proto, proto)
        parts.append(f"### {title}: {subset}\n\n" + _md_table(header, rows))
    if any(r["unseen"] == 0 for r in data["rows"]):
        parts.append("† pre-trained on every bundled generator: on this task the 'unseen' generator was seen in "
                     "training, so the row is not an unseen-generator result.")
    if data["perturbations"]:
        header = ["detector", "none"] + data["perturbations"]
        for metric in ("auc", "tpr@1%fpr"):
            rows = []
            for d in data["detectors"]:
                cells = [data["by"].get((d, "in_distribution", "all", p, metric)) for p in ["none"] +
                         data["perturbations"]]
                if any(cells):
                    rows.append([d] + [_f(c["value"], 2) if c else "–" for c in cells])
            parts.append(f"### Perturbation grid (in-distribution detectors, both classes perturbed): {metric}\n\n"
                         + _md_table(header, rows))
    if data["controls"]:
        header = ["detector"] + [c[8:] for c in data["controls"]]
        rows = []
        for d in data["detectors"]:
            cells = [data["by"].get((d, "in_distribution", "all", c, "flag_rate")) for c in data["controls"]]
            if any(cells):
                rows.append([d] + [_ci(c, 2) if c else "–" for c in cells])
        parts.append("### Shortcut controls: share of real test images flagged at the shipped threshold "
                     "(`none` = unprocessed)\n\n" + _md_table(header, rows))
    return "\n\n".join(parts)


def render_markdown(data: dict[str, Any]) -> str:
    run = data["run"]
    head = (f"# medaudit detector leaderboard\n\nRun `{run['run_id']}` ({run['profile']} profile), dataset "
            f"`{run['dataset_hash']}`, {run['machine']}; wall {_f(run['wall_s'], 0)} s, CPU {_f(run['cpu_s'], 0)} s."
            f"\n\n")
    return head + render_leaderboard_md(data) + "\n\n" + render_protocols_md(data) + "\n"


# ---------------------------------------------------------------------------------------------- svg
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")


def _svg_frame(title: str, xlabel: str, ylabel: str, body: str, legend: list[tuple[str, str]], w: int = 360,
               h: int = 300, log_x: bool = False) -> str:
    ticks = "".join(
        f'<line x1="{40 + t * 280:.0f}" y1="250" x2="{40 + t * 280:.0f}" y2="254" stroke="#333"/>'
        f'<text x="{40 + t * 280:.0f}" y="266" font-size="9" text-anchor="middle">{lab}</text>'
        f'<line x1="36" y1="{250 - t * 220:.0f}" x2="40" y2="{250 - t * 220:.0f}" stroke="#333"/>'
        f'<text x="33" y="{253 - t * 220:.0f}" font-size="9" text-anchor="end">{t:.1f}</text>'
        for t, lab in zip((0, 0.25, 0.5, 0.75, 1.0),
                          (("0.001", "0.006", "0.03", "0.18", "1") if log_x else ("0", "0.25", "0.5", "0.75", "1")),
                          strict=True))
    leg = "".join(f'<rect x="{w - 118}" y="{30 + 12 * i}" width="8" height="8" fill="{c}"/>'
                  f'<text x="{w - 106}" y="{38 + 12 * i}" font-size="9">{escape(n)}</text>'
                  for i, (n, c) in enumerate(legend))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img" aria-label="{escape(title)}"><rect width="{w}" height="{h}" fill="white"/>'
            f'<text x="180" y="16" font-size="11" text-anchor="middle">{escape(title)}</text>'
            f'<rect x="40" y="30" width="280" height="220" fill="none" stroke="#333"/>{ticks}{body}{leg}'
            f'<text x="180" y="290" font-size="10" text-anchor="middle">{escape(xlabel)}</text>'
            f'<text x="12" y="140" font-size="10" text-anchor="middle" transform="rotate(-90 12 140)">'
            f'{escape(ylabel)}</text></svg>')


def roc_svg(curves: list[tuple[str, list]], title: str, log_x: bool = True) -> str:
    """ROC curves (FPR on a log axis from 0.001 by default, where fraud screening operates)."""

    def xmap(f: float) -> float:
        if not log_x:
            return 40 + 280 * f
        return 40 + 280 * (math.log10(max(f, 1e-3)) + 3) / 3

    body, legend = [], []
    if not log_x:
        body.append('<line x1="40" y1="250" x2="320" y2="30" stroke="#bbb" stroke-dasharray="3,3"/>')
    else:
        body.append(f'<line x1="{xmap(0.01):.1f}" y1="30" x2="{xmap(0.01):.1f}" y2="250" stroke="#bbb" '
                    'stroke-dasharray="3,3"/>')
    for i, (name, pts) in enumerate(curves):
        c = _COLORS[i % len(_COLORS)]
        path = " ".join(f"{xmap(fp):.1f},{250 - 220 * tp:.1f}" for fp, tp in pts)
        body.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{path}"><title>{escape(name)}'
                    f'</title></polyline>')
        legend.append((name, c))
    return _svg_frame(title, "false-positive rate" + (" (log)" if log_x else ""), "true-positive rate",
                      "".join(body), legend, log_x=log_x)


def reliability_svg(curves: list[tuple[str, list]], title: str) -> str:
    body = ['<line x1="40" y1="250" x2="320" y2="30" stroke="#bbb" stroke-dasharray="3,3"/>']
    legend = []
    for i, (name, pts) in enumerate(curves):
        c = _COLORS[i % len(_COLORS)]
        path = " ".join(f"{40 + 280 * p:.1f},{250 - 220 * o:.1f}" for p, o, _n in pts)
        body.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.2" points="{path}"/>')
        body += [f'<circle cx="{40 + 280 * p:.1f}" cy="{250 - 220 * o:.1f}" r="2" fill="{c}"/>' for p, o, _n in pts]
        legend.append((name, c))
    return _svg_frame(title, "mean predicted P(synthetic)", "observed share synthetic", "".join(body), legend)


# ---------------------------------------------------------------------------------------------- html
def render_html(data: dict[str, Any]) -> str:
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
                             autoescape=True)
    tmpl = env.get_template("leaderboard.html")
    plots = []
    for proto, subset in data["tasks"]:
        roc = data["curves"].get((proto, subset, "roc"), [])
        if roc:
            plots.append(Markup(roc_svg(roc, f"ROC - {proto}: {subset}")))
    rel = data["curves"].get(("in_distribution", "all", "reliability"), [])
    if rel:
        plots.append(Markup(reliability_svg(rel, "Reliability - in_distribution")))

    def num(r: dict | None) -> float:
        return float("nan") if r is None else r["value"]

    tables = []
    for proto, subset in data["tasks"]:
        rows = []
        for d in data["detectors"]:
            rs = [data["by"].get((d, proto, subset, "none", m)) for m in TABLE_METRICS]
            if any(rs):
                rows.append({"detector": d, "ours": d in OURS, "seen": any(r and r["unseen"] == 0 for r in rs),
                             "cells": [(num(r), _ci(r)) for r in rs]})
        tables.append({"title": f"{PROTOCOL_TITLES.get(proto, proto)}: {subset}", "rows": rows})
    ctl = data["controls"]
    board = [{**b, "unseen_txt": (_f(b["unseen_tpr1"]) if not math.isnan(b["unseen_tpr1"]) else
                                  ("not measurable" if b["not_rankable"] else "n/a")),
              "auc": (num(b["id"]["auc"]), _ci(b["id"]["auc"])),
              "tpr1": (num(b["id"]["tpr@1%fpr"]), _ci(b["id"]["tpr@1%fpr"])),
              "ctl": [(num(b["controls"].get(c)), _f(num(b["controls"].get(c)), 2)) for c in ctl]}
             for b in data["board"]]
    pert_rows = []
    for d in data["detectors"]:
        cells = [data["by"].get((d, "in_distribution", "all", p, "tpr@1%fpr")) for p in data["perturbations"]]
        if any(cells):
            pert_rows.append({"detector": d, "cells": [(num(c), _f(num(c), 2)) for c in cells]})
    return tmpl.render(run=data["run"], board=board, controls=[c[8:] for c in ctl], tables=tables,
                       metrics=TABLE_METRICS, plots=plots, standing=standing(data), baselines=BASELINES,
                       perturbations=data["perturbations"], pert_rows=pert_rows, skipped=data["skipped"],
                       fmt=_f, isnan=math.isnan, third=data.get("ranked_by") == "third_party")
