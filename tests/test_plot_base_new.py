"""tools/plot_base_new.py: each point is labelled by what a reader knows it as, has its own look,
and stays visible; the legend covers nothing and the title gives the seeds."""

import pytest

from clipprompt.errors import UserError
from clipprompt.results import Base2NewRow
from tools import plot_base_new


def _row(trainer, config, base=80.0, new=70.0, shots=16, seeds=(1, 2)):
    return Base2NewRow("FashionColours", trainer, config, shots, base, 1.0, new, 1.0, 74.67, 74.6, seeds)


# the eleven runs of scripts/mini_benchmark.sh
BENCHMARK_RUNS = [("ZeroshotCLIP", "mini"), ("CoOp", "c"), ("CoCoOp", "c"), ("KgCoOp", "c"), ("ProGrad", "c"),
                  ("MaPLe", "m"), ("PromptSRC", "p"), ("DualPromptMI", "c_ensemble_only"), ("DualPromptMI", "c"),
                  ("DualPromptMI", "c_ivlp"), ("DualPromptMI", "c_maple")]


def test_ensemble_only_config_reads_coop_plus_ensemble_and_dualpromptmi_stays_itself():
    points = [_row("CoOp", "mini_c4_ep20_batch8_ctxv1"),
              _row("DualPromptMI", "mini_c4_ep20_batch8_ctxv1_ensemble_only"),
              _row("DualPromptMI", "mini_c4_ep20_batch8_ctxv1")]
    labels = plot_base_new.point_labels(points)
    assert [label.split(":")[0] for label in labels] == ["CoOp", "CoOp + ensemble", "DualPromptMI"]
    assert all("mini_c4" not in label for label in labels)


def test_dualpromptmi_over_deep_prompt_learners_reads_with_its_learner():
    points = [_row("DualPromptMI", "mini_c4_ep20_batch8_ctxv1"),
              _row("DualPromptMI", "mini_c4_ep20_batch8_ctxv1_ivlp"),
              _row("DualPromptMI", "mini_c4_ep20_batch8_ctxv1_maple"),
              _row("DualPromptMI", "mini_published_c2_ep20_batch4_4+4ctx_promptsrc"),
              _row("MaPLe", "mini_c2_ep20_batch8_2ctx")]
    labels = [label.split(":")[0] for label in plot_base_new.point_labels(points)]
    assert labels == ["DualPromptMI", "DualPromptMI (IVLP)", "DualPromptMI (MaPLe)", "DualPromptMI (PromptSRC)", "MaPLe"]


def test_config_is_added_only_when_one_name_has_several_configs():
    points = [_row("CoOp", "a"), _row("CoOp", "b"), _row("CoCoOp", "c")]
    labels = [label.split(":")[0] for label in plot_base_new.point_labels(points)]
    assert labels == ["CoOp / a", "CoOp / b", "CoCoOp"]


def test_label_option_names_a_point():
    names = plot_base_new.parse_labels(["CoOp/a=CoOp, 4 tokens"])
    assert plot_base_new.point_labels([_row("CoOp", "a")], names)[0].startswith("CoOp, 4 tokens: HM")
    with pytest.raises(UserError, match="TRAINER/CONFIG=NAME"):
        plot_base_new.parse_labels(["CoOp=x"])


def test_points_of_a_full_benchmark_never_share_marker_and_colour():
    # the CPU benchmarks plot 11 runs; with 10 markers the 11th looked exactly like the first
    styles = [plot_base_new.point_style(index) for index in range(144)]
    assert len(set(styles)) == 144
    assert plot_base_new.point_style(10) != plot_base_new.point_style(0)


def test_every_method_of_a_benchmark_has_its_own_colour_and_its_own_marker():
    # ZeroshotCLIP and PromptSRC shared one blue; now no two of the 11 runs share a colour or a marker
    styles = plot_base_new.point_styles([_row(*run) for run in BENCHMARK_RUNS])
    assert len({marker for marker, _ in styles}) == len({colour for _, colour in styles}) == len(BENCHMARK_RUNS)
    # a method keeps its look in a subset of the runs (TRAINERS=...) and whatever the order
    subset = plot_base_new.point_styles([_row("PromptSRC", "p"), _row("ZeroshotCLIP", "mini")])
    assert subset == [styles[6], styles[0]]
    # two configs of one method, and unknown names, still differ
    assert len(set(plot_base_new.point_styles([_row("CoOp", "a"), _row("CoOp", "b"), _row("Mine", "x")]))) == 3


def _figure(points, seeds_note="FashionColours"):
    return plot_base_new.figure(points, seeds_note, "accuracy", "std")


def _marker_lines(fig):
    """The points' markers: the labelled lines (error bar caps and the diagonal excluded)."""
    return [line for line in fig.axes[0].lines if ": HM " in line.get_label()]


def test_title_gives_the_number_of_seeds():
    import matplotlib.pyplot as plt

    fig = _figure([_row("CoOp", "c", seeds=(1, 2, 3, 4, 5, 6)), _row("KgCoOp", "c", seeds=(1, 2, 3, 4, 5, 6))])
    assert "FashionColours, 6 seeds" in fig.axes[0].get_title()
    plt.close(fig)
    fig = _figure([_row("CoOp", "c", seeds=(1, 2, 3)), _row("KgCoOp", "c", seeds=(1, 2, 3, 4, 5, 6))])
    assert "3-6 seeds" in fig.axes[0].get_title()
    plt.close(fig)


def test_legend_lies_outside_the_axes_and_inside_the_figure():
    import matplotlib.pyplot as plt

    fig = _figure([_row(*run, base=60 + 3 * i, new=50 + 2 * i) for i, run in enumerate(BENCHMARK_RUNS)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes_box = fig.axes[0].get_window_extent(renderer)
    legend_box = fig.axes[0].get_legend().get_window_extent(renderer)
    assert legend_box.x0 > axes_box.x1  # right of the plot area: it covers no point or iso-HM label
    assert legend_box.x1 <= fig.bbox.x1 and legend_box.y0 >= fig.bbox.y0  # and not cut off
    plt.close(fig)


def test_points_at_the_same_place_are_drawn_apart_and_a_lone_point_stays():
    # ZeroshotCLIP and ProGrad on fashion10: 66.35 / 76.15 and 66.38 / 76.16, one marker hid the other
    import matplotlib.pyplot as plt

    points = [_row("ZeroshotCLIP", "mini", 66.35, 76.15), _row("ProGrad", "c", 66.38, 76.16),
              _row("CoOp + ensemble", "c", 79.0, 75.0), _row("DualPromptMI", "c_ensemble_only", 79.0, 75.0),
              _row("DualPromptMI", "c_ivlp", 79.0, 75.0), _row("CoOp", "c", 84.45, 73.11)]
    fig = _figure(points)
    fig.canvas.draw()
    to_points = 72.0 / fig.dpi
    drawn = [line.get_transform().transform(line.get_xydata())[0] * to_points for line in _marker_lines(fig)]
    true = [fig.axes[0].transData.transform((row.base_mean, row.new_mean)) * to_points for row in points]
    assert len(drawn) == len(points)
    for i in range(len(drawn)):
        for j in range(i + 1, len(drawn)):
            gap = ((drawn[i] - drawn[j]) ** 2).sum() ** 0.5
            assert gap >= plot_base_new.MARKER_SIZE, (points[i].trainer, points[j].trainer, gap)
    assert ((drawn[-1] - true[-1]) ** 2).sum() ** 0.5 < 1e-6  # CoOp, alone, is drawn where it is
    for line in _marker_lines(fig):  # each marker outlined, so an overlap would still show both edges
        assert line.get_markeredgecolor() == "black" and line.get_markeredgewidth() > 0
    plt.close(fig)


def test_marker_offsets_by_hand():
    offsets = plot_base_new.marker_offsets([(0.0, 0.0), (0.0, 0.0), (100.0, 0.0)], min_separation=10.0)
    assert offsets[2] == (0.0, 0.0)
    moved = [(x + dx, y + dy) for (x, y), (dx, dy) in zip([(0.0, 0.0), (0.0, 0.0)], offsets[:2])]
    assert abs(((moved[0][0] - moved[1][0]) ** 2 + (moved[0][1] - moved[1][1]) ** 2) ** 0.5 - 10.0) < 1e-9


def test_the_tool_writes_a_png(tmp_path):
    import json

    for half, folder, value in (("base", "train_base", 80.0), ("new", "test_new", 70.0)):
        for seed in (1, 2):
            path = tmp_path / "b2n" / folder / "fashion_colours" / "shots_16" / "CoOp" / "c" / f"seed{seed}"
            path.mkdir(parents=True)
            (path / "results.json").write_text(json.dumps(
                {"trainer": "CoOp", "dataset": "FashionColours", "config": "c", "seed": seed, "subsample": half,
                 "accuracy": value + seed}))
    assert plot_base_new.main([str(tmp_path / "b2n"), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
