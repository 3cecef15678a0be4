import math

import torch

from greensed.model.crnn import CRNN, count_parameters
from greensed.model.teacher import ema_update, make_teacher
from greensed.train.step import ramp


def test_parameter_count_matches_baseline():
    assert count_parameters(CRNN()) == 1_112_420


def test_output_shapes():
    model = CRNN().eval()
    with torch.no_grad():
        strong, weak = model(torch.rand(3, 626, 128))
    assert strong.shape == (3, 10, 156)
    assert weak.shape == (3, 10)
    assert float(strong.min()) >= 0 and float(strong.max()) <= 1
    assert float(weak.min()) >= 0 and float(weak.max()) <= 1


def test_batchnorm_settings():
    bns = [m for m in CRNN().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 7
    assert all(bn.eps == 1e-3 and bn.momentum == 0.99 for bn in bns)


def test_weak_is_attention_weighted_mean_of_strong():
    torch.manual_seed(0)
    model = CRNN().eval()
    captured = {}
    model.attention_head.register_forward_hook(lambda m, i, o: captured.setdefault("att", o))
    strong, weak = model(torch.rand(2, 626, 128))
    att = torch.softmax(captured["att"], -1).clamp(1e-7, 1).transpose(1, 2)  # [B, C, T]
    expected = (strong * att).sum(-1) / att.sum(-1)
    torch.testing.assert_close(weak, expected)


def test_ema_alpha_schedule_and_update():
    student = torch.nn.Linear(2, 1, bias=False)
    teacher = make_teacher(student)
    with torch.no_grad():
        student.weight.fill_(1.0)
        teacher.weight.fill_(0.0)
    assert ema_update(teacher, student, step=1) == 0.5  # 1 - 1/(1+1)
    torch.testing.assert_close(teacher.weight, torch.full((1, 2), 0.5))
    assert ema_update(teacher, student, step=10_000) == 0.999
    assert not any(p.requires_grad for p in teacher.parameters())


def test_exponential_rampup():
    assert ramp(0, 100) == math.exp(-5)
    assert ramp(50, 100) == math.exp(-5 * 0.25)
    assert ramp(100, 100) == 1.0 and ramp(1000, 100) == 1.0
    assert ramp(3, 0) == 1.0
