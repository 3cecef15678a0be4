from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from greensed.data import synth
from greensed.data.spec import CLASSES, SAMPLE_RATE
from greensed.data.tsv import read_strong_tsv, read_weak_tsv
from greensed.errors import DataError


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(tiny_dataset, tiny_preset):
    for subset, (audio, tsv) in synth.LAYOUT.items():
        wavs = sorted((tiny_dataset / audio).glob("*.wav"))
        assert len(wavs) == tiny_preset.size(subset)
        info = sf.info(wavs[0])
        assert (info.samplerate, info.channels, info.frames, info.subtype) == \
            (16000, 1, 160000, "PCM_16")
        assert (tsv is None) == (subset == "unlabelled")
    strong = read_strong_tsv(tiny_dataset / synth.LAYOUT["strong"][1])
    assert {r.filename for r in strong} == {f"strong_{i:05d}.wav" for i in range(4)}
    weak = read_weak_tsv(tiny_dataset / synth.LAYOUT["weak"][1])
    assert [r.filename for r in weak] == [f"weak_{i:05d}.wav" for i in range(4)]


def test_same_seed_identical_bytes(tiny_dataset, tiny_preset, tmp_path):
    again = synth.generate(tmp_path / "again", tiny_preset, seed=0)
    assert tree_bytes(again) == tree_bytes(tiny_dataset)


def test_workers_do_not_change_output(tmp_path):
    preset = synth.SynthPreset(n_strong=2, n_weak=1, n_unlabelled=1, n_validation=1)
    one = synth.generate(tmp_path / "one", preset, seed=3)
    two = synth.generate(tmp_path / "two", preset, seed=3, workers=2)
    assert tree_bytes(one) == tree_bytes(two)


def test_different_seed_differs(tiny_dataset, tiny_preset, tmp_path):
    other = tree_bytes(synth.generate(tmp_path / "other", tiny_preset, seed=1))
    base = tree_bytes(tiny_dataset)
    assert other.keys() == base.keys()
    for name in base:
        if name.endswith((".wav", ".tsv")):
            assert other[name] != base[name], name


def test_weak_tags_are_the_events_present(tmp_path):
    # The weak generator is the strong one with labels reduced to tags: same
    # seed stream, so re-draw a weak clip and compare.
    preset = synth.SynthPreset(n_strong=1, n_weak=3, n_unlabelled=1, n_validation=1)
    root = synth.generate(tmp_path / "d", preset, seed=5)
    for row in read_weak_tsv(root / synth.LAYOUT["weak"][1]):
        index = int(row.filename[5:10])
        wave, events = synth.make_clip(synth.clip_rng(5, "weak", index), preset)
        assert row.classes == tuple(sorted({c for c, _, _ in events}))
        on_disk, _ = sf.read(root / synth.LAYOUT["weak"][0] / row.filename)
        np.testing.assert_allclose(on_disk, wave, atol=1 / 32768)


@pytest.mark.parametrize("seed", range(6))
def test_events_respect_the_preset(seed):
    preset = synth.SynthPreset(n_strong=1, n_weak=1, n_unlabelled=1, n_validation=1,
                               events_per_clip=(3, 5), event_duration_s=(0.5, 3.0),
                               max_polyphony=2)
    wave, events = synth.make_clip(np.random.default_rng(seed), preset)
    assert wave.dtype == np.float32 and wave.shape == (160000,)
    assert np.abs(wave).max() <= 0.95 + 1e-6
    assert 1 <= len(events) <= 5
    for cls, on, off in events:
        assert 0 <= cls < len(CLASSES) and 0.0 <= on < off <= 10.0
        assert round(on, 3) == on and round(off, 3) == off
        assert off - on == pytest.approx(np.clip(off - on, 0.5, 3.0), abs=1e-3)
    for t in np.arange(0, 10, 0.001):
        sounding = [c for c, on, off in events if on <= t < off]
        assert len(sounding) <= 2 and len(set(sounding)) == len(sounding)


def test_snr_sets_event_level():
    preset = synth.SynthPreset(n_strong=1, n_weak=1, n_unlabelled=1, n_validation=1,
                               events_per_clip=(1, 1), event_duration_s=(3.0, 3.0),
                               snr_db=(20.0, 20.0))
    for seed in range(5):
        wave, [(_, on, off)] = synth.make_clip(np.random.default_rng(seed), preset)
        a, b = round(on * SAMPLE_RATE), round(off * SAMPLE_RATE)
        inside = wave[a + 200:b - 200]
        outside = np.concatenate([wave[:a], wave[b:]])
        ratio_db = 10 * np.log10(np.mean(inside**2) / np.mean(outside**2))
        # Event at +20 dB over the background, plus the background itself.
        assert ratio_db == pytest.approx(10 * np.log10(101), abs=1.5), seed


@pytest.mark.parametrize("family", synth.FAMILIES, ids=CLASSES)
def test_families_any_length(family):
    rng = np.random.default_rng(0)
    for seconds in (0.05, 0.3, 0.8, 4.0, 10.0):
        n = int(seconds * SAMPLE_RATE)
        x = family(rng, n)
        assert x.shape == (n,) and np.isfinite(x).all() and np.sqrt(np.mean(x**2)) > 1e-3


def test_refuses_non_empty_folder(tmp_path, tiny_preset):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not empty"):
        synth.generate(tmp_path / "x", tiny_preset)


def test_presets_are_tunable_dataclasses():
    quick = synth.PRESETS["quick"]
    assert dataclasses.is_dataclass(quick)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.n_strong = 1  # type: ignore[misc]
    paper = synth.PRESETS["paper-like"]
    assert (paper.n_strong, paper.n_weak, paper.n_unlabelled, paper.n_validation) == \
        (10000, 1578, 14412, 2500)


def test_cli_synth(tmp_path, tiny_preset, monkeypatch):
    from greensed.cli import app

    monkeypatch.setitem(synth.PRESETS, "tiny", tiny_preset)
    runner = CliRunner()
    res = runner.invoke(app, ["synth", str(tmp_path / "out"), "--preset", "tiny", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert "strong 4" in res.output
    assert len(list((tmp_path / "out" / "audio" / "validation").glob("*.wav"))) == 4
    res = runner.invoke(app, ["synth", str(tmp_path / "o2"), "--preset", "quik"])
    assert res.exit_code != 0 and "unknown synthetic preset ('quik')" in str(res.exception)


@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_label_noise_changes_training_labels_only_and_never_the_audio(tmp_path):
    from greensed.data.synth import SynthPreset, generate

    clean = SynthPreset(n_strong=6, n_weak=6, n_unlabelled=2, n_validation=6)
    noisy = SynthPreset(n_strong=6, n_weak=6, n_unlabelled=2, n_validation=6, label_noise=0.5)
    a, b = generate(tmp_path / "a", clean, seed=3), generate(tmp_path / "b", noisy, seed=3)
    for wav in sorted((a / "audio").rglob("*.wav")):  # the same sounds
        assert wav.read_bytes() == (b / wav.relative_to(a)).read_bytes()
    val = "metadata/validation/validation.tsv"
    assert (a / val).read_text() == (b / val).read_text()  # validation stays true
    strong = "metadata/train/synthetic.tsv"
    rows_a = [ln.split("\t") for ln in (a / strong).read_text().splitlines()[1:]]
    rows_b = [ln.split("\t") for ln in (b / strong).read_text().splitlines()[1:]]
    assert [r[:3] for r in rows_a] == [r[:3] for r in rows_b]  # same clips and times
    changed = sum(x[3] != y[3] for x, y in zip(rows_a, rows_b, strict=True))
    assert 0 < changed < len(rows_a)  # about half, never the same class again
    again = generate(tmp_path / "c", noisy, seed=3)
    assert (again / strong).read_text() == (b / strong).read_text()  # deterministic


@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_offset_bias_lengthens_strong_training_labels_only(tmp_path):
    from greensed.data.synth import SynthPreset, generate

    clean = SynthPreset(n_strong=6, n_weak=6, n_unlabelled=2, n_validation=6)
    biased = SynthPreset(n_strong=6, n_weak=6, n_unlabelled=2, n_validation=6,
                         offset_bias_s=1.0)
    a, b = generate(tmp_path / "a", clean, seed=3), generate(tmp_path / "b", biased, seed=3)
    for wav in sorted((a / "audio").rglob("*.wav")):  # the same sounds
        assert wav.read_bytes() == (b / wav.relative_to(a)).read_bytes()
    for same in ("metadata/validation/validation.tsv", "metadata/train/weak.tsv"):
        assert (a / same).read_text() == (b / same).read_text()
    strong = "metadata/train/synthetic.tsv"
    rows_a = [ln.split("\t") for ln in (a / strong).read_text().splitlines()[1:]]
    rows_b = [ln.split("\t") for ln in (b / strong).read_text().splitlines()[1:]]
    assert [(r[0], r[1], r[3]) for r in rows_a] == [(r[0], r[1], r[3]) for r in rows_b]
    for x, y in zip(rows_a, rows_b, strict=True):  # offset + 1 s, clipped to the clip
        assert float(y[2]) == pytest.approx(min(10.0, float(x[2]) + 1.0), abs=1e-3)
    assert any(float(x[2]) + 1.0 <= 10.0 for x in rows_a)


def test_test_subset_is_held_out_and_clean(tmp_path):
    # Its own seed stream: none of its clips is another subset's, and the label bias
    # and noise of the training subsets never reach it (as validation).
    preset = synth.SynthPreset(n_strong=3, n_weak=1, n_unlabelled=1, n_validation=3, n_test=3,
                               label_noise=1.0, offset_bias_s=1.0)
    root = synth.generate(tmp_path / "d", preset, seed=2)
    audio, tsv = synth.TEST_LAYOUT
    wavs = {p.name: p.read_bytes() for p in sorted((root / audio).glob("*.wav"))}
    assert list(wavs) == [f"test_{i:05d}.wav" for i in range(3)]
    others = {p.read_bytes() for p in root.rglob("*.wav") if p.parent != root / audio}
    assert not others & set(wavs.values())
    rows = read_strong_tsv(root / tsv)
    for i in range(3):
        _, events = synth.make_clip(synth.clip_rng(2, "test", i), preset)
        assert sorted(r.event for r in rows if r.filename == f"test_{i:05d}.wav") == \
            sorted(events)


def test_a_preset_without_test_writes_none_and_keeps_its_marker(tmp_path):
    preset = synth.SynthPreset(n_strong=1, n_weak=1, n_unlabelled=1, n_validation=1)
    root = synth.generate(tmp_path / "d", preset, seed=0)
    assert not (root / "audio" / "test").exists()
    # Sets generated before n_test existed stay valid (no regeneration).
    assert "n_test" not in synth._marker(preset, 0)["preset"]
    with_test = dataclasses.replace(preset, n_test=2)
    assert synth._marker(with_test, 0)["preset"]["n_test"] == 2


def test_the_loader_finds_the_test_subset(tmp_path):
    from greensed.config import FeatureConfig
    from greensed.data.desed import load_dataset

    preset = synth.SynthPreset(n_strong=1, n_weak=1, n_unlabelled=1, n_validation=1, n_test=2)
    root = synth.generate(tmp_path / "d", preset, seed=0)
    ds = load_dataset(root, FeatureConfig(), cache_dir=tmp_path / "cache")
    assert ds.test is not None and list(ds.test.files) == ["test_00000.wav", "test_00001.wav"]
    assert len(ds.validation) == 1
