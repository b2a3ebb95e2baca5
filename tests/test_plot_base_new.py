"""tools/plot_base_new.py: each point is labelled by what a reader knows it as."""

import importlib.util
import os

import pytest

from clipprompt.errors import UserError
from clipprompt.results import Base2NewRow
from conftest import REPO

_spec = importlib.util.spec_from_file_location("plot_base_new", os.path.join(REPO, "tools", "plot_base_new.py"))
plot_base_new = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_base_new)


def _row(trainer, config, base=80.0, new=70.0, shots=16):
    return Base2NewRow("FashionColours", trainer, config, shots, base, 1.0, new, 1.0, 74.67, 74.6, (1, 2))


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
              _row("MaPLe", "mini_c2_ep20_batch8_2ctx")]
    labels = [label.split(":")[0] for label in plot_base_new.point_labels(points)]
    assert labels == ["DualPromptMI", "DualPromptMI (IVLP)", "DualPromptMI (MaPLe)", "MaPLe"]


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
    styles = [plot_base_new.point_style(index) for index in range(110)]
    assert len(set(styles)) == 110
    assert plot_base_new.point_style(10) != plot_base_new.point_style(0)
