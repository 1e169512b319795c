"""Students: width scaling follows residuals and flatten->Linear, keeps the output, and refuses what it
cannot scale; factory students are checked against the teacher's output shape."""

from __future__ import annotations

import pytest
import torch
from distill_models import INPUT_SHAPE, ResidualCNN, opaque_teacher, wrong_classes_student
from edgecraft.plugins.distillation.student import (
    StudentError,
    check_student_fits,
    count_params,
    kept_channels,
    probe_output,
    scale_width,
)

EXAMPLE = [torch.zeros((2, *INPUT_SHAPE[1:]))]  # the model's inputs, as TorchModel.example_inputs(2) gives them


def test_scaled_student_keeps_outputs_and_shrinks_by_width_squared() -> None:
    teacher = ResidualCNN(16)
    student = scale_width(teacher, EXAMPLE, 0.5)
    assert probe_output(student, EXAMPLE, label="s") == probe_output(teacher, EXAMPLE, label="t")
    assert student.stem[0].out_channels == 8 and student.block[0].out_channels == 8  # residual pair stays equal
    assert student.head[1].in_features == 8 * 16 and student.head[3].out_features == 10
    ratio = count_params(student) / count_params(teacher)
    assert 0.2 < ratio < 0.32  # ~width², plus the unscaled input and output layers
    assert count_params(teacher) > count_params(student)  # the teacher itself is untouched
    assert teacher.stem[0].out_channels == 16


def test_random_init_differs_from_teacher_init_and_is_seeded() -> None:
    teacher = ResidualCNN(16)
    from_teacher = scale_width(teacher, EXAMPLE, 0.5, init="teacher")
    fresh_a = scale_width(teacher, EXAMPLE, 0.5, init="random", seed=3)
    fresh_b = scale_width(teacher, EXAMPLE, 0.5, init="random", seed=3)
    w = teacher.head[3].weight
    # Kept neurons carry the teacher's weights: each student column is one of the teacher's columns.
    for column in from_teacher.head[3].weight.T:
        assert any(torch.equal(column, teacher_column) for teacher_column in w.T)
    assert not torch.equal(fresh_a.head[3].weight, from_teacher.head[3].weight)
    assert torch.equal(fresh_a.head[3].weight, fresh_b.head[3].weight)


def test_round_to_gives_hardware_friendly_widths() -> None:
    assert [kept_channels(c, 0.45, 8) for c in (32, 64, 128, 4)] == [16, 32, 56, 4]
    assert [kept_channels(c, 0.45, None) for c in (32, 64, 3)] == [14, 29, 1]
    student = scale_width(ResidualCNN(16), EXAMPLE, 0.3, round_to=4)
    assert student.stem[0].out_channels == 4 and student.head[1].out_features == 8  # 4.8 -> 4, 9.6 -> 8
    exact = scale_width(ResidualCNN(16), EXAMPLE, 0.3, round_to=None)
    assert exact.stem[0].out_channels == 5 and exact.head[1].out_features == 10


def test_unscalable_architecture_is_refused_clearly() -> None:
    with pytest.raises(StudentError, match="has no Conv/Linear layer to scale"):
        scale_width(opaque_teacher(), EXAMPLE, 0.5)


def test_wrong_output_shape_is_refused() -> None:
    teacher_out = probe_output(ResidualCNN(16), EXAMPLE, label="t")
    with pytest.raises(StudentError, match=r"outputs shape \[2, 7\] but the teacher outputs \[2, 10\]"):
        check_student_fits(wrong_classes_student(), teacher_out, EXAMPLE, label="the student")
