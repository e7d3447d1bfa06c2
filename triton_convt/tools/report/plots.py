"""The report's PNG plots: measured throughput and speedup (a GPU run), and the modelled roofline, bytes and the
interpreter checks (a CPU run). Each title says whether its figures are measured or modelled; the output depends on
the rows alone (no timestamps, no matplotlib version in the PNG's metadata: :data:`METADATA`), so a rerun writes
the same bytes, and the CPU plots draw nothing that differs from machine to machine (the checks' pass or fail, not
their errors)."""

from __future__ import annotations

import math
import statistics

from .rows import CHECK, FUSED, MODEL, UNFUSED


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else float("nan")


def _facets(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted({(r["dtype"], r["layout"]) for r in rows})


def layer_names(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["layer"] for r in rows))


def _figure(n_panels: int, width: float = 12, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_panels, 1, figsize=(width, height * n_panels), squeeze=False)
    return plt, fig, axes[:, 0]


#: The PNGs' text metadata: none. matplotlib writes ``Software: Matplotlib version ...`` by default, which would
#: change the bytes of every plot with the matplotlib a rerun happens to have.
METADATA = {"Software": None}


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata=METADATA)
    plt.close(fig)


def plot_throughput(rows: list[dict], path: str, device: str) -> None:
    """Measured TFLOP/s per layer and implementation, one panel per dtype and layout."""
    measured = [r for r in rows if r.get("median_ms")]
    facets, names = _facets(measured), layer_names(measured)
    impls = list(dict.fromkeys(r["impl"] for r in measured))
    plt, fig, axes = _figure(len(facets))
    for ax, (dtype, layout) in zip(axes, facets):
        for i, impl in enumerate(impls):
            mine = [r for r in measured if (r["dtype"], r["layout"], r["impl"]) == (dtype, layout, impl)]
            values = {r["layer"]: r["tflops"] for r in mine}
            xs = [j + (i - (len(impls) - 1) / 2) * 0.8 / len(impls) for j in range(len(names))]
            ax.bar(xs, [values.get(n, 0) for n in names], width=0.8 / len(impls), label=impl)
        ax.set_title(f"{device}, {dtype}, {layout}: measured TFLOP/s (useful FLOPs / median time)")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("TFLOP/s")
        ax.legend(fontsize=7, ncols=len(impls))
    _save(plt, fig, path)


def plot_speedup(rows: list[dict], path: str, device: str) -> dict[str, float]:
    """Measured speedup of triton_convt over cuDNN (benchmark off) per layer, one panel per dtype and layout, with
    the geometric mean; returns the geomeans by ``dtype/layout``."""
    ours = [r for r in rows if r["impl"] == "triton_convt" and r.get("speedup_vs_cudnn")]
    facets, names = _facets(ours), layer_names(ours)
    plt, fig, axes = _figure(len(facets))
    means = {}
    for ax, (dtype, layout) in zip(axes, facets):
        values = {r["layer"]: r["speedup_vs_cudnn"] for r in ours if (r["dtype"], r["layout"]) == (dtype, layout)}
        means[f"{dtype}/{layout}"] = mean = geomean(list(values.values()))
        heights = [values.get(n, 0) for n in names]
        ax.bar(range(len(names)), heights, color=["tab:green" if h >= 1 else "tab:red" for h in heights])
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(mean, color="tab:blue", ls="--", label=f"geomean {mean:.2f}x")
        ax.set_title(f"{device}, {dtype}, {layout}: measured speedup of triton_convt over cuDNN + eager epilogue")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("speedup (x)")
        ax.legend(fontsize=7)
    _save(plt, fig, path)
    return means


def _log_ticks(ax, axis: str = "y") -> None:
    """Plain numbers (0.1, 20, 1000) instead of powers of ten on a log axis, minor ticks labelled as matplotlib
    would (only when the axis spans few decades)."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def _num_to_string(self, x, vmin, vmax):
            return f"{x:g}"

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(Plain())
    target.set_minor_formatter(Plain(labelOnlyBase=False))


def _spread(wanted: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Positions as close as possible (least squares) to the sorted ``wanted`` ones, at least ``gap`` apart and
    within [lo, hi] where they fit: pool-adjacent-violators on ``wanted[i] - i * gap``."""
    blocks: list[list[float]] = []  # [sum, count]
    for i, w in enumerate(wanted):
        blocks.append([w - i * gap, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out = [total / count for total, count in blocks for _ in range(int(count))]
    out = [v + i * gap for i, v in enumerate(out)]
    if out:  # shift the row back inside the axes where it pokes out (a row wider than them starts at lo)
        shift = max(lo - out[0], 0.0) or min(hi - out[-1], 0.0)
        out = [v + shift for v in out]
    return out


def _dtype_groups(rows: list[dict], key) -> list[tuple[str, list[dict]]]:
    """Dtypes whose rows give the same ``key`` merged into one group named ``"bfloat16 = float16"``, in the order
    the dtypes first appear; each group keeps the rows of its first dtype."""
    groups: dict = {}
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        mine = [r for r in rows if r["dtype"] == dtype]
        groups.setdefault(key(mine), []).append((dtype, mine))
    return [(" = ".join(d for d, _ in members), members[0][1]) for members in groups.values()]


_COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")
_MARKERS = (("o", True), ("D", False), ("^", False), ("s", False), ("v", False))


def plot_roofline(rows: list[dict], path: str) -> None:
    """Modelled: each layer's arithmetic intensity on each part's roofline (fused call), one panel per part.

    Points are numbered 1..N in layer order (numbers in a row under the points, one row per dtype group, with a
    leader line to each point) and a key beside the panels maps numbers to layer names. One roofline per distinct
    (peak, bandwidth) pair, named after every dtype that shares it; dtypes whose points coincide are one marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fused = [r for r in rows if r["kind"] == MODEL and r["impl"] == FUSED]
    parts, names = list(dict.fromkeys(r["device"] for r in fused)), layer_names(fused)
    number = {name: i + 1 for i, name in enumerate(names)}
    key_cols = max(1, math.ceil(len(names) / 40))
    fig = plt.figure(figsize=(10 + 2.6 * key_cols, 4.8 * len(parts)))
    grid = fig.add_gridspec(len(parts), 2, width_ratios=(10, 2.6 * key_cols))
    axes = [fig.add_subplot(grid[i, 0]) for i in range(len(parts))]
    ridges = [r["peak_tflops"] * 1e3 / r["peak_gbps"] for r in fused]  # FLOP/byte where each roof turns flat
    lo = min(min(r["intensity"] for r in fused), *ridges) / 2
    hi = max(max(r["intensity"] for r in fused), *ridges) * 2
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    rows_of_labels = []
    for ax, part in zip(axes, parts):
        mine = [r for r in fused if r["device"] == part]
        lines = _dtype_groups(mine, lambda rs: (rs[0]["peak_tflops"], rs[0]["peak_gbps"]))
        color_of = {}
        for i, (label, rs) in enumerate(lines):
            peak, bw = rs[0]["peak_tflops"], rs[0]["peak_gbps"]
            color_of[(peak, bw)] = _COLORS[i % len(_COLORS)]
            # Rooflines share their memory slope where the bandwidth is the same: dash all but the first.
            ax.plot(
                xs,
                [min(peak, x * bw / 1e3) for x in xs],
                lw=1.4 if i == 0 else 1.2,
                ls="-" if i == 0 else "--",
                color=color_of[(peak, bw)],
                label=f"roofline {label}: {peak:g} TFLOP/s, {bw:g} GB/s",
                zorder=2,
            )
        points = _dtype_groups(mine, lambda rs: tuple((r["layer"], r["intensity"], r["model_tflops"]) for r in rs))
        labelled = []
        for j, (label, rs) in enumerate(points):
            color = color_of[(rs[0]["peak_tflops"], rs[0]["peak_gbps"])]
            marker, filled = _MARKERS[j % len(_MARKERS)]
            ax.scatter([r["intensity"] for r in rs], [r["model_tflops"] for r in rs], s=22 if filled else 42,
                       marker=marker, facecolors=color if filled else "none", edgecolors=color, linewidths=1,
                       label=f"layers, {label} (number = layer, see key)", zorder=4 - j * 0.1)  # fmt: skip
            labelled.append((color, rs))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        # Room under the lowest point for one row of numbers per point group.
        band = 0.05 + 0.08 * len(labelled)
        top = max(r["peak_tflops"] for r in mine) * 1.8
        low = min(r["model_tflops"] for r in mine) / 1.6
        bottom = math.exp((math.log(low) - band * math.log(top)) / (1 - band))
        ax.set_ylim(bottom, top)
        _log_ticks(ax, "x")
        _log_ticks(ax, "y")
        ax.grid(True, which="major", lw=0.4, alpha=0.4)
        ax.set_xlabel("arithmetic intensity (FLOP/byte: useful FLOPs / minimum bytes moved)")
        ax.set_ylabel("roofline bound (TFLOP/s)")
        ax.set_title(
            f"{part}: roofline bound of the fused call (modelled from published peaks, not measured)", fontsize=10
        )
        ax.legend(fontsize=7.5, loc="upper left")
        rows_of_labels.append((ax, labelled))
    key = fig.add_subplot(grid[:, 1])
    key.axis("off")
    per_col = math.ceil(len(names) / key_cols)
    key.text(0, 1, "key: point number = layer", fontsize=9, fontweight="bold", va="top", transform=key.transAxes)
    for i, name in enumerate(names):
        col, line = divmod(i, per_col)
        key.text(col / key_cols, 0.97 - line * min(0.024, 0.95 / per_col), f"{i + 1:>2}  {name}", fontsize=8,
                 family="monospace", va="top", transform=key.transAxes)  # fmt: skip
    fig.tight_layout()
    for ax, labelled in rows_of_labels:
        width_px = ax.get_position().width * fig.get_figwidth() * 72  # points
        gap = 14 / width_px  # axes fraction between two numbers: 2 digits at 8.5 pt and a space
        to_frac = lambda x: math.log(x / lo) / math.log(hi / lo)  # noqa: E731
        for j, (color, rs) in enumerate(labelled):
            rs = sorted(rs, key=lambda r: (r["intensity"], number[r["layer"]]))
            at = _spread([to_frac(r["intensity"]) for r in rs], gap, gap / 2, 1 - gap / 2)
            y = 0.03 + 0.08 * (len(labelled) - 1 - j)
            for r, x in zip(rs, at):
                ax.annotate(
                    str(number[r["layer"]]),
                    (r["intensity"], r["model_tflops"]),
                    xytext=(x, y),
                    textcoords="axes fraction",
                    fontsize=8.5,
                    color=color,
                    ha="center",
                    va="bottom",
                    arrowprops=dict(arrowstyle="-", color=color, lw=0.6, alpha=0.7, shrinkA=0, shrinkB=2),
                )
    fig.savefig(path, dpi=80, metadata=METADATA)
    plt.close(fig)


def plot_bytes(rows: list[dict], path: str) -> None:
    """Modelled: minimum (fused) and unfused-chain bytes per layer, and the modelled bound time of each on the
    first part, for the first dtype of the rows."""
    model = [r for r in rows if r["kind"] == MODEL]
    dtype = model[0]["dtype"]
    part = model[0]["device"]
    names = layer_names(model)
    pick = lambda impl: {r["layer"]: r for r in model if (r["dtype"], r["device"], r["impl"]) == (dtype, part, impl)}  # noqa: E731
    fused, unfused = pick(FUSED), pick(UNFUSED)
    plt, fig, axes = _figure(2, width=max(12, 0.5 * len(names)), height=3.8)
    panels = ((axes[0], "bytes", 1e6, "bytes moved (MB)"), (axes[1], "model_ms", 1e-3, "roofline bound time (µs)"))
    for ax, key, scale, ylabel in panels:
        for shift, by_layer, impl in ((-0.2, fused, FUSED), (0.2, unfused, UNFUSED)):
            ax.bar(
                [i + shift for i in range(len(names))], [by_layer[n][key] / scale for n in names], width=0.4, label=impl
            )
        ax.set_yscale("log")
        values = [by_layer[n][key] / scale for by_layer in (fused, unfused) for n in names]
        ax.set_ylim(min(values) / 2, max(values) * 6)  # headroom for the legend above the tallest bar
        _log_ticks(ax)
        ax.grid(True, axis="y", which="major", lw=0.4, alpha=0.4)
        ax.set_axisbelow(True)
        ax.set_ylabel(ylabel)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
        ax.legend(fontsize=8, ncols=2, loc="upper right")
    axes[0].set_title(
        f"{dtype}: bytes moved, fused call vs conv + bias pass + activation pass (modelled from shapes, not measured)",
        fontsize=10,
    )
    axes[1].set_title(
        f"{dtype} on {part}: roofline bound time, fused vs unfused (modelled from published peaks, not measured)",
        fontsize=10,
    )
    _save(plt, fig, path)


def plot_checks(rows: list[dict], path: str) -> None:
    """Interpreter checks: pass or fail per layer (columns) and dtype and layout (rows), as a grid of cells. The
    errors themselves are not drawn: the interpreter's fp32 error differs in its last digits from machine to machine
    (its BLAS), and the plot must not (the console prints the worst error over tolerance of each run)."""
    from matplotlib.colors import ListedColormap

    checks = [r for r in rows if r["kind"] == CHECK]
    names = layer_names(checks)
    facets = list(dict.fromkeys((r["dtype"], r["layout"]) for r in checks))
    cell = {(r["dtype"], r["layout"], r["layer"]): r["ok"] for r in checks}
    grid = [[float(cell[(d, lay, n)]) if (d, lay, n) in cell else math.nan for n in names] for d, lay in facets]
    plt, fig, axes = _figure(1, width=max(12, 0.42 * len(names)), height=1.6 + 0.42 * len(facets))
    ax = axes[0]
    ax.imshow(grid, cmap=ListedColormap(["tab:red", "tab:green"]), vmin=0, vmax=1, aspect="auto")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if not math.isnan(value):
                ax.text(j, i, "ok" if value else "FAIL", ha="center", va="center", fontsize=6.5, color="white")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(range(len(facets)), [f"{d}, {lay}" for d, lay in facets], fontsize=7)
    tolerances = ", ".join(f"{d} {t:g}" for d, t in dict.fromkeys((r["dtype"], r["tolerance"]) for r in checks))
    passed = sum(1 for r in checks if r["ok"])
    ax.set_title(f"Interpreter checks (layers scaled down, CPU; correctness, not speed): {passed} of {len(checks)} "
                 f"within tolerance of torch in fp64 ({tolerances})", fontsize=9)  # fmt: skip
    _save(plt, fig, path)
