"""A participant's DESED folder read as the DCASE 2022 baseline reads it.

The tree below uses DESED_task 2022's folder and file names (confs/default.yaml),
its tsv formats (a weak tsv with comma-separated labels, durations written with
pandas' ``float_format="%.1f"``), 44.1 kHz folders next to their ``_16k`` copies,
clips shorter than 10 s, a clip listed only with an empty row and files listed but
missing on disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from greensed.config import FeatureConfig
from greensed.data.desed import RowView, load_dataset, weak_split_names
from greensed.data.spec import CLASS_INDEX, CLASSES, OUT_FRAME_S
from greensed.errors import ConfigError, DataError
from greensed.metrics.events import Events, decode
from greensed.metrics.intersection import intersection_f1
from greensed.metrics.psds import psds_scores
from greensed.train.batches import batch_composition, steps_per_epoch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STRONG_HEADER = "filename\tonset\toffset\tevent_label\n"
SYNTH = "audio/train/synthetic21_train/soundscapes"
WEAK = "audio/train/weak"
UNLAB = "audio/train/unlabel_in_domain"
SYNTH_VAL = "audio/validation/synthetic21_validation/soundscapes"
TEST = "audio/validation/validation"
VAL_DUR = "metadata/validation/synthetic21_validation/durations.tsv"
TEST_DUR = "metadata/validation/validation_durations.tsv"
WEAK_TSV = "metadata/train/weak.tsv"
TEST_TSV = "metadata/validation/validation.tsv"
WEAK_FILES = ["Y-BJNMHMZDcU_50.000_60.000.wav", "Y00pbt6aJV8Y_350.000_360.000.wav",
              "Y0GBXj-u8Ob8_30.000_40.000.wav", "Y0KIhvPtQyCA_0.000_10.000.wav"]
WEAK_MISSING = WEAK_FILES[2]  # resampled copy absent: the _16k folder is incomplete
TEST_MISSING = "Y5xmHYDuuUl8_60.000_70.000.wav"


def _tone(seconds: float, sr: int, hz: float, seed: int) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    return (0.3 * np.sin(2 * np.pi * hz * t) + noise).astype(np.float32)


def _write(folder: Path, name: str, seconds: float, sr: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / name, _tone(seconds, sr, 500 + 50 * seed, seed), sr, subtype="FLOAT")


def _both(root: Path, folder: str, name: str, seconds: float, seed: int) -> None:
    """The original at 44.1 kHz and the baseline's resampled _16k copy."""
    _write(root / folder, name, seconds, 44100, seed)
    _write(root / f"{folder}_16k", name, seconds, 16000, seed)


def _durations_tsv(path: Path, folder: Path, skip: tuple[str, ...] = ()) -> None:
    """As the baseline's generate_tsv_wav_durations: every wav of the folder, %.1f."""
    rows = [[p.name, sf.info(str(p)).duration] for p in sorted(folder.glob("*.wav"))
            if p.name not in skip]
    pd.DataFrame(rows, columns=["filename", "duration"]).to_csv(
        path, sep="\t", index=False, float_format="%.1f")


def build_desed(root: Path) -> Path:
    for i, seconds in enumerate((6.0, 10.0, 4.0, 2.0)):
        _both(root, SYNTH, f"{i}.wav", seconds, i)
    meta = root / "metadata/train/synthetic21_train"
    meta.mkdir(parents=True)
    (meta / "soundscapes.tsv").write_text(
        STRONG_HEADER + "0.wav\t0.5\t2.0\tDog\n0.wav\t1.0\t4.25\tSpeech\n"
        "1.wav\t0.0\t10.0\tFrying\n2.wav\t3.1\t5.2\tCat\n"
        "3.wav\t\t\t\n")  # 3.wav: only an empty row
    for i, name in enumerate(WEAK_FILES):
        _write(root / WEAK, name, 3.0, 44100, 10 + i)
        if name != WEAK_MISSING:
            _write(root / f"{WEAK}_16k", name, 3.0, 16000, 10 + i)
    (root / WEAK_TSV).write_text(
        "filename\tevent_labels\n"
        f"{WEAK_FILES[0]}\tDog,Speech\n{WEAK_FILES[1]}\tAlarm_bell_ringing\n"
        f"{WEAK_FILES[2]}\tBlender,Cat,Dishes\n{WEAK_FILES[3]}\tVacuum_cleaner\n")
    for i in range(2):  # unlabelled: only the 44.1 kHz folder
        _write(root / UNLAB, f"Y{i}unlab_0.000_10.000.wav", 3.0, 44100, 20 + i)
    for i, seconds in enumerate((3.25, 10.0, 7.0)):
        _write(root / f"{SYNTH_VAL}_16k", f"{i}.wav", seconds, 16000, 30 + i)
    val_meta = root / "metadata/validation/synthetic21_validation"
    val_meta.mkdir(parents=True)
    (val_meta / "soundscapes.tsv").write_text(
        STRONG_HEADER + "0.wav\t2.0\t3.25\tBlender\n1.wav\t1.0\t9.0\tRunning_water\n"
        "2.wav\t0.0\t7.0\tElectric_shaver_toothbrush\n")
    _durations_tsv(root / VAL_DUR, root / f"{SYNTH_VAL}_16k")
    test_clips = {"Y0a_0.000_10.000.wav": 10.0, "Y1b_30.000_34.270.wav": 4.27,
                  "Y2c_0.000_5.000.wav": 5.0}
    for i, (name, seconds) in enumerate(test_clips.items()):
        _both(root, TEST, name, seconds, 40 + i)
    (root / TEST_TSV).write_text(
        STRONG_HEADER + "Y0a_0.000_10.000.wav\t0.0\t2.5\tDog\n"
        "Y0a_0.000_10.000.wav\t5.0\t9.9\tSpeech\nY1b_30.000_34.270.wav\t1.0\t4.27\tCat\n"
        f"{TEST_MISSING}\t0.0\t1.0\tDishes\nY2c_0.000_5.000.wav\t0.5\t4.0\tFrying\n")
    _durations_tsv(root / TEST_DUR, root / f"{TEST}_16k")
    return root


@pytest.fixture(scope="module")
def desed_tree(tmp_path_factory) -> Path:
    """Shared: copy it (``desed`` fixture) before changing it."""
    return build_desed(tmp_path_factory.mktemp("desed") / "dataset")


@pytest.fixture
def desed(desed_tree, tmp_path) -> Path:
    return shutil.copytree(desed_tree, tmp_path / "dataset", symlinks=True)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def loaded(desed_tree, shared_cache):
    """(dataset, progress lines) of the shared tree, skipping the missing files."""
    lines: list[str] = []
    ds = load_dataset(desed_tree, FeatureConfig(), cache_dir=shared_cache, skip_bad_audio=True,
                      progress=lines.append)
    return ds, lines


def test_layout_detected_16k_preferred_and_reported_in_one_line(desed_tree, loaded):
    ds, lines = loaded
    assert ds.layout == "desed2022" and ds.root == desed_tree
    assert lines[0] == (
        f"data: DESED 2022 layout at {desed_tree}: strong {SYNTH}_16k, weak {WEAK}_16k, "
        f"unlabelled {UNLAB}, validation {SYNTH_VAL}_16k (durations {VAL_DUR}), "
        f"test {TEST}_16k (durations {TEST_DUR})")
    assert ds.strong.audio_dir == desed_tree / f"{SYNTH}_16k"
    assert ds.unlabelled.audio_dir == desed_tree / UNLAB  # no _16k copy: the 44.1 kHz one
    assert len(ds.unlabelled) == 2 and float(np.asarray(ds.unlabelled.mels).max()) > 0


def test_empty_row_clip_dropped_and_counted(desed_tree, loaded):
    ds, lines = loaded
    assert ds.strong.files == ["0.wav", "1.wav", "2.wav"]
    assert ds.strong.empty_dropped == ["3.wav"] and ds.strong.n_empty_dropped == 1
    assert ds.validation.n_empty_dropped == 0 and ds.weak.n_empty_dropped == 0
    tsv = desed_tree / "metadata/train/synthetic21_train/soundscapes.tsv"
    assert (f"{tsv}: strong: 1 clips listed only with empty rows dropped, as the baseline's "
            "dropna (3.wav)") in lines
    dog, speech = CLASS_INDEX["Dog"], CLASS_INDEX["Speech"]
    assert [e for e in ds.strong.events if e[0] == 0] == [(0, dog, 0.5, 2.0),
                                                          (0, speech, 1.0, 4.25)]


def test_missing_files_all_reported_then_fatal(desed):
    with pytest.raises(DataError) as err:
        load_dataset(desed, FeatureConfig(), cache_dir=desed.parent / "cache")
    msg = str(err.value)
    assert "\n" not in msg
    weak = (f"{desed / WEAK_TSV}:4: weak: 1 of 4 listed audio files not found in "
            f"{desed / WEAK}_16k ({WEAK_MISSING})")
    test = (f"{desed / TEST_TSV}:5: test: 1 of 4 listed audio files not found in "
            f"{desed / TEST}_16k ({TEST_MISSING})")
    assert msg == f"{weak}; {test} (set skip_bad_audio, --skip-bad-audio, to train without them)"
    assert not (desed.parent / "cache" / "features").exists()  # found before any decoding


def test_missing_files_skipped_with_skip_bad_audio_and_counted_per_reason(desed, tmp_path):
    for i in range(5):
        _write(desed / f"{WEAK}_16k", f"Yextra{i}_0.000_10.000.wav", 1.0, 16000, 60 + i)
    extra = [f"Yextra{i}_0.000_10.000.wav" for i in range(5)]
    with (desed / WEAK_TSV).open("a") as fh:
        fh.writelines(f"{name}\tDog\n" for name in extra)
    for name in extra[:4]:
        (desed / f"{WEAK}_16k" / name).unlink()
    (desed / UNLAB / "Y0unlab_0.000_10.000.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk")
    lines: list[str] = []
    ds = load_dataset(desed, FeatureConfig(), cache_dir=tmp_path / "cache", skip_bad_audio=True,
                      progress=lines.append)
    assert ds.left_out() == {"missing": 6, "unreadable": 1}
    assert ds.weak.missing == [WEAK_MISSING, *extra[:4]]
    assert ds.weak.files == [WEAK_FILES[0], WEAK_FILES[1], WEAK_FILES[3], extra[4]]
    assert ds.missing_audio == sorted([str(desed / f"{WEAK}_16k" / n) for n in ds.weak.missing]
                                      + [str(desed / f"{TEST}_16k" / TEST_MISSING)])
    assert ds.unreadable_audio == [str(desed / UNLAB / "Y0unlab_0.000_10.000.wav")]
    assert ds.skipped_audio == sorted(ds.missing_audio + ds.unreadable_audio)
    (weak_line,) = [ln for ln in lines if ": weak: " in ln]
    assert weak_line == (f"{desed / WEAK_TSV}:4: weak: 5 of 9 listed audio files not found in "
                         f"{desed / WEAK}_16k ({WEAK_MISSING}, {extra[0]}, {extra[1]}, ...): "
                         "left out (skip_bad_audio)")
    assert any(ln.startswith(f"{desed / TEST_TSV}:5: test: 1 of 4 ") for ln in lines)


def test_durations_from_the_tsv_else_from_the_audio(desed_tree, loaded, desed, tmp_path):
    ds, _ = loaded
    val = ds.validation
    # 3.25 s decoded, written "3.2" by the baseline (%.1f): the tsv value is the one used.
    assert val.durations_s == [3.2, 10.0, 7.0] and val.durations_from == "tsv"
    assert val.durations_tsv == desed_tree / VAL_DUR
    test = ds.test
    assert test.files == ["Y0a_0.000_10.000.wav", "Y1b_30.000_34.270.wav",
                          "Y2c_0.000_5.000.wav"]
    assert test.durations_s == [10.0, 4.3, 5.0] and test.durations_from == "tsv"
    # Training subsets have no durations tsv: decoded lengths, before padding.
    assert ds.strong.durations_s == [6.0, 10.0, 4.0] and ds.strong.durations_from == "audio"

    (desed / VAL_DUR).unlink()  # no tsv: decoded lengths
    _durations_tsv(desed / TEST_DUR, desed / f"{TEST}_16k", skip=("Y2c_0.000_5.000.wav",))
    lines: list[str] = []
    again = load_dataset(desed, FeatureConfig(), cache_dir=tmp_path / "cache",
                         skip_bad_audio=True, progress=lines.append)
    assert again.validation.durations_s == pytest.approx([3.25, 10.0, 7.0])
    assert again.validation.durations_from == "audio" and again.validation.durations_tsv is None
    assert "validation audio/validation/synthetic21_validation/soundscapes_16k (durations from " \
           "the audio)" in lines[0]
    assert again.test.durations_s == pytest.approx([10.0, 4.3, 5.0])
    assert again.test.durations_from == "tsv+audio"
    assert (f"{desed / TEST_DUR}: test: 1 of 3 clips not listed; their decoded length is used "
            "(Y2c_0.000_5.000.wav)") in lines


def test_test_subset_is_the_recorded_validation_set(loaded):
    ds, _ = loaded
    test = ds.test
    assert test.name == "test" and test.strong.shape == (3, 10, 156)
    assert test.mels.shape == (3, 626, 128) and test.missing == [TEST_MISSING]
    cat = CLASS_INDEX["Cat"]
    assert (1, cat, 1.0, 4.27) in test.events
    # Only the scored part of each clip: min(duration, 10 s).
    np.testing.assert_allclose(test.metric_durations_s(10.0), [10.0, 4.3, 5.0])
    assert [s.name for s in ds.subsets()] == ["strong", "weak", "unlabelled", "validation"]


def test_greensed_layout_has_no_test_subset(tiny_dataset, cache_dir):
    lines: list[str] = []
    ds = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir, progress=lines.append)
    assert ds.layout == "greensed" and ds.test is None
    assert lines[0] == (f"data: greensed layout at {tiny_dataset}: strong audio/train/synthetic, "
                        "weak audio/train/weak, unlabelled audio/train/unlabelled, validation "
                        "audio/validation (durations from the audio)")
    assert ds.left_out() == {"missing": 0, "unreadable": 0}


def test_toml_map_with_test_and_durations(desed_tree, loaded, shared_cache):
    ds, _ = loaded
    spec = desed_tree / "desed.toml"  # beside audio/: same relative paths, same cache keys
    d = desed_tree
    spec.write_text(
        f'[strong]\naudio = "{d}/{SYNTH}"\ntsv = "{d}/metadata/train/synthetic21_train/'
        f'soundscapes.tsv"\n[weak]\naudio = "{d}/{WEAK}"\ntsv = "{d}/{WEAK_TSV}"\n'
        f'[unlabelled]\naudio = "{d}/{UNLAB}"\n'
        f'[validation]\naudio = "{d}/{SYNTH_VAL}_16k"\ntsv = "{d}/metadata/validation/'
        f'synthetic21_validation/soundscapes.tsv"\ndurations = "{d}/{VAL_DUR}"\n'
        f'[test]\naudio = "{d}/{TEST}_16k"\ntsv = "{d}/{TEST_TSV}"\n')
    lines: list[str] = []
    mapped = load_dataset(spec, FeatureConfig(), cache_dir=shared_cache, skip_bad_audio=True,
                          progress=lines.append)
    assert mapped.layout == "toml" and lines[0].startswith(f"data: TOML map at {spec}: ")
    assert mapped.strong.audio_dir == d / SYNTH  # the map is taken as written: 44.1 kHz
    assert mapped.validation.durations_s == ds.validation.durations_s
    assert mapped.test.files == ds.test.files and mapped.test.durations_from == "audio"
    assert mapped.test.durations_s == pytest.approx([10.0, 4.27, 5.0])
    # The weak files were decoded from the 44.1 kHz folder (kaiser_best): all four there.
    assert mapped.weak.missing == [] and len(mapped.weak) == 4
    assert mapped.unlabelled.cache_hit and not mapped.strong.cache_hit
    spec.write_text(spec.read_text().replace('[weak]\n', '[weak]\ndurations = "x.tsv"\n'))
    with pytest.raises(DataError, match=r"\[weak\] unknown key \('durations'\); expected "
                                        r"audio, tsv$"):
        load_dataset(spec, FeatureConfig(), cache_dir=shared_cache)
    spec.unlink()


def test_folder_without_a_known_layout(tmp_path, desed_tree):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no dataset layout found \(neither DESED "
                                        r"2022's audio/train/synthetic21_train/ nor greensed's"):
        load_dataset(tmp_path / "empty", FeatureConfig(), cache_dir=tmp_path / "cache")
    parent = desed_tree.parent  # holds dataset/: a common slip
    with pytest.raises(DataError, match=rf"; did you mean {desed_tree}\?$"):
        load_dataset(parent, FeatureConfig(), cache_dir=tmp_path / "cache")


def test_missing_desed_folder_names_both_candidates(desed, tmp_path):
    shutil.rmtree(desed / UNLAB)
    with pytest.raises(DataError, match=rf"unlabelled: audio folder not found \({desed / UNLAB}"
                                        rf"_16k or {desed / UNLAB}\)"):
        load_dataset(desed, FeatureConfig(), cache_dir=tmp_path / "cache")


UNLAB_TSV = "metadata/train/unlabel_in_domain.tsv"
UNLAB_FILES = ["Y0unlab_0.000_10.000.wav", "Y1unlab_0.000_10.000.wav"]
FIXED = "(set skip_bad_audio, --skip-bad-audio, to train without them)"


def _half_written_16k(desed: Path) -> str:
    """An interrupted resample: the _16k copy holds one of the two clips."""
    _write(desed / f"{UNLAB}_16k", UNLAB_FILES[0], 3.0, 16000, 20)
    return (f"{desed / UNLAB}: unlabelled: 1 of 2 listed audio files not found in "
            f"{desed / UNLAB}_16k ({UNLAB_FILES[1]})")


def _names_tsv_lists_one_more(desed: Path) -> str:
    """DESED's unlabel_in_domain.tsv lists a clip the folder lacks."""
    (desed / UNLAB_TSV).write_text("filename\n" + "".join(f"{n}\n" for n in UNLAB_FILES)
                                   + "Y2gone_0.000_10.000.wav\n")
    return (f"{desed / UNLAB_TSV}:4: unlabelled: 1 of 3 listed audio files not found in "
            f"{desed / UNLAB} (Y2gone_0.000_10.000.wav)")


def _whole_folder_gone(desed: Path) -> str:
    """Listed by DESED's unlabel_in_domain.tsv, neither folder on disk."""
    (desed / UNLAB_TSV).write_text("filename\n" + "".join(f"{n}\n" for n in UNLAB_FILES))
    shutil.rmtree(desed / UNLAB)
    return (f"{desed / UNLAB_TSV}:2: unlabelled: 2 of 2 listed audio files not found in "
            f"{desed / UNLAB}_16k (no such folder) ({', '.join(UNLAB_FILES)})")


@pytest.mark.parametrize("damage", [_half_written_16k, _names_tsv_lists_one_more,
                                    _whole_folder_gone])
def test_unlabelled_files_listed_but_missing_are_the_missing_file_error(desed, tmp_path,
                                                                        damage):
    unlab = damage(desed)
    with pytest.raises(DataError) as err:
        load_dataset(desed, FeatureConfig(), cache_dir=tmp_path / "cache")
    weak = (f"{desed / WEAK_TSV}:4: weak: 1 of 4 listed audio files not found in "
            f"{desed / WEAK}_16k ({WEAK_MISSING})")
    test = (f"{desed / TEST_TSV}:5: test: 1 of 4 listed audio files not found in "
            f"{desed / TEST}_16k ({TEST_MISSING})")
    assert str(err.value) == f"{weak}; {unlab}; {test} {FIXED}"


def test_half_written_16k_copy_skipped_and_counted(desed, tmp_path):
    unlab = _half_written_16k(desed)
    lines: list[str] = []
    ds = load_dataset(desed, FeatureConfig(), cache_dir=tmp_path / "cache", skip_bad_audio=True,
                      progress=lines.append)
    assert f"{unlab}: left out (skip_bad_audio)" in lines
    assert ds.unlabelled.files == UNLAB_FILES[:1] and ds.unlabelled.missing == UNLAB_FILES[1:]
    assert ds.left_out() == {"missing": 3, "unreadable": 0}  # weak, test and this one
    assert str(desed / f"{UNLAB}_16k" / UNLAB_FILES[1]) in ds.missing_audio


def test_whole_listed_folder_missing_is_the_same_error_then_an_empty_subset(desed, tmp_path):
    for folder in (desed / WEAK, desed / f"{WEAK}_16k"):
        shutil.rmtree(folder)
    with pytest.raises(DataError, match=rf"^{desed / WEAK_TSV}:2: weak: 4 of 4 listed audio "
                                        rf"files not found in {desed / WEAK}_16k \(no such "
                                        rf"folder\) \({WEAK_FILES[0]}, "):
        load_dataset(desed, FeatureConfig(), cache_dir=tmp_path / "cache")
    lines: list[str] = []
    with pytest.raises(DataError, match=r"^weak: empty subset \(every file listed in "):
        load_dataset(desed, FeatureConfig(), cache_dir=tmp_path / "cache",
                     skip_bad_audio=True, progress=lines.append)
    assert any(ln.startswith(f"{desed / WEAK_TSV}:2: weak: 4 of 4 ") and
               ln.endswith("left out (skip_bad_audio)") for ln in lines)


# --- the weak split --------------------------------------------------------------

def test_weak_split_of_1578_names_leaves_out_pandas_158():
    names = [f"Y{i:05d}_{i % 7}0.000_{i % 7 + 1}0.000.wav" for i in range(1578)]
    train, held = weak_split_names(names, frac=0.9, seed=42)
    assert len(train) == 1420 and len(held) == 158
    df = pd.DataFrame({"filename": names})
    sample = df.sample(frac=0.9, random_state=42)
    assert train == sample["filename"].tolist()
    assert held == df.drop(sample.index)["filename"].tolist()
    # Independently of pandas: sample() draws RandomState(seed).permutation(n)[:round(frac n)].
    first = np.random.RandomState(42).permutation(1578)[:1420]
    assert train == [names[i] for i in first]
    assert held == [names[i] for i in sorted(set(range(1578)) - set(first.tolist()))]
    assert weak_split_names(names, seed=1)[1] != held  # the seed matters
    with pytest.raises(ConfigError, match=r"data.weak_split = 1.5: must be in \(0, 1\]"):
        weak_split_names(names, frac=1.5)


def test_split_views_drawn_on_the_full_tsv_before_missing_files(loaded):
    ds, _ = loaded
    # The tsv listing, missing file included, is what the split is drawn on.
    assert ds.weak.tsv_rows == WEAK_FILES
    want_train, want_held = weak_split_names(WEAK_FILES, frac=0.5, seed=3)
    train, held = ds.split_weak(seed=3, frac=0.5)
    assert train.name == "weak_train" and held.name == "weak_validation"
    assert train.files == [f for f in want_train if f != WEAK_MISSING]
    assert held.files == [f for f in want_held if f != WEAK_MISSING]
    assert sorted(train.files + held.files) == sorted(ds.weak.files)
    for view in (train, held):
        assert isinstance(view.mels, RowView) and view.mels.shape == (len(view), 626, 128)
        rows = [ds.weak.files.index(f) for f in view.files]
        np.testing.assert_array_equal(view.parent_rows, rows)
        np.testing.assert_array_equal(np.asarray(view.mels), np.asarray(ds.weak.mels)[rows])
        np.testing.assert_array_equal(view.mels[0], ds.weak.mels[rows[0]])
        np.testing.assert_array_equal(view.weak, ds.weak.weak[rows])
    # Labels from the comma-separated weak tsv.
    dog_speech = ds.weak.weak[ds.weak.files.index(WEAK_FILES[0])]
    assert np.flatnonzero(dog_speech).tolist() == [CLASS_INDEX["Dog"], CLASS_INDEX["Speech"]]


def test_steps_per_epoch_at_desed_sizes_with_the_split():
    names = [f"Y{i}.wav" for i in range(1578)]
    n_weak_train = len(weak_split_names(names, frac=0.9, seed=42)[0])
    for batch, steps in ((48, 118), (32, 177)):
        shares = batch_composition(batch)
        assert steps_per_epoch((10000, n_weak_train, 14412), shares) == steps
    # Without the split the weak set would bound the epoch at 131 steps (batch 48).
    assert steps_per_epoch((10000, 1578, 14412), batch_composition(48)) == 131


# --- metrics on the short clips --------------------------------------------------

def _perfect_probs(sub) -> np.ndarray:
    return np.where(sub.strong > 0, 0.95, 0.02).astype(np.float64)


def test_f1_and_psds_on_short_clips(loaded):
    ds, _ = loaded
    for sub in (ds.validation, ds.test):
        truth = Events.from_tuples(sub.events)
        durations = sub.metric_durations_s(10.0)
        probs = _perfect_probs(sub)
        f1 = intersection_f1(decode(probs, frame_s=OUT_FRAME_S), truth, n_classes=len(CLASSES),
                             durations_s=durations)
        assert 0.0 < f1.macro_f1 <= 1.0
        res = psds_scores(probs, truth, sub.files, list(CLASSES), durations_s=durations)
        assert 0.0 < res["psds1"] <= 1.0 and 0.0 < res["psds2"] <= 1.0
        assert set(res["classes_without_ground_truth"]) == {
            c for k, c in enumerate(CLASSES) if f1.n_ref[k] == 0}
    # The test set's short clips: what the model says after 4.3 s and 5.0 s is not scored.
    test = ds.test
    clean = _perfect_probs(test)
    noisy = clean.copy()
    noisy[1, :, int(np.ceil(4.3 / OUT_FRAME_S)):] = 0.99
    noisy[2, :, int(np.ceil(5.0 / OUT_FRAME_S)):] = 0.99
    truth, durations = Events.from_tuples(test.events), test.metric_durations_s(10.0)
    a = psds_scores(clean, truth, test.files, list(CLASSES), durations_s=durations,
                    median_window=1)
    b = psds_scores(noisy, truth, test.files, list(CLASSES), durations_s=durations,
                    median_window=1)
    assert (a["psds1"], a["psds2"]) == (b["psds1"], b["psds2"])
    fa = intersection_f1(decode(clean, median_window=1), truth, n_classes=10,
                         durations_s=durations)
    fb = intersection_f1(decode(noisy, median_window=1), truth, n_classes=10,
                         durations_s=durations)
    assert fa.macro_f1 == fb.macro_f1 and fb.fp.sum() == fa.fp.sum()
