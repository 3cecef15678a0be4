from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile

from greensed.config import FeatureConfig
from greensed.data import synth
from greensed.data.desed import default_cache_dir, load_dataset
from greensed.data.labels import encode_strong
from greensed.data.spec import CLASS_INDEX
from greensed.data.tsv import read_strong_tsv, read_weak_tsv
from greensed.errors import ConfigError, DataError


@pytest.fixture
def dataset(tiny_dataset, tmp_path):
    return shutil.copytree(tiny_dataset, tmp_path / "dataset")


def test_synth_output_loads_back(tiny_dataset, cache_dir):
    ds = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    assert ds.root == tiny_dataset and ds.skipped_audio == []
    for sub in ds.subsets():
        assert len(sub) == 4 and sub.mels.shape == (4, 626, 128)
        assert float(np.asarray(sub.mels).max()) > 0
    assert ds.unlabelled.strong is None and ds.unlabelled.weak is None
    assert ds.unlabelled.events is None
    assert ds.weak.strong is None and ds.weak.events is None
    tags = {r.filename: r.classes for r in read_weak_tsv(tiny_dataset / "metadata/train/weak.tsv")}
    assert [tuple(np.flatnonzero(w)) for w in ds.weak.weak] == [tags[f] for f in ds.weak.files]
    for sub, tsv in ((ds.strong, "metadata/train/synthetic.tsv"),
                     (ds.validation, "metadata/validation/validation.tsv")):
        rows = read_strong_tsv(tiny_dataset / tsv)
        want = sorted((sub.files.index(r.filename), *r.event) for r in rows)
        assert sorted(sub.events) == want
        assert sub.strong.shape == (4, 10, 156) and sub.strong.dtype == np.uint8
        for i in range(len(sub)):
            evs = [(c, on, off) for j, c, on, off in sub.events if j == i]
            np.testing.assert_array_equal(sub.strong[i], encode_strong(evs))
            assert sub.weak[i].tolist() == sub.strong[i].any(axis=1).astype(int).tolist()


def test_long_clip_cropped_and_labels_shifted(dataset, cache_dir):
    sr = 16000
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 12 * sr)
    soundfile.write(dataset / "audio/validation/validation_00000.wav", noise, sr)
    (dataset / "metadata/validation/validation.tsv").write_text(
        "filename\tonset\toffset\tevent_label\n"
        "validation_00000.wav\t0.5\t3.0\tDog\n"
        "validation_00000.wav\t10.5\t11.5\tCat\n"
        "validation_00000.wav\t11.2\t12.0\tSpeech\n"
        "validation_00001.wav\t\t\t\n")
    ds = load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    val = ds.validation
    # validation_00001 has only an empty row: dropped, as the baseline's dropna does.
    assert val.files == ["validation_00000.wav"] and val.empty_dropped == ["validation_00001.wav"]
    assert val.durations_s == [12.0] and val.durations_from == "audio"
    np.testing.assert_array_equal(val.metric_durations_s(10.0), [10.0])
    dog, cat = CLASS_INDEX["Dog"], CLASS_INDEX["Cat"]
    # The centre 10 s window starts at 1.0 s.
    assert val.events == [(0, dog, 0.0, 2.0), (0, cat, 9.5, 10.0)]
    assert np.flatnonzero(val.strong[0, dog]).tolist() == list(range(0, 32))  # ceil(31.25)
    assert np.flatnonzero(val.strong[0, cat]).tolist() == list(range(148, 156))
    assert val.weak[0].sum() == 2


def test_missing_audio_names_tsv_line_and_file(dataset, cache_dir):
    rows = read_strong_tsv(dataset / "metadata/train/synthetic.tsv")
    victim = rows[-1].filename
    first_line = min(r.line for r in rows if r.filename == victim)
    (dataset / "audio/train/synthetic" / victim).unlink()
    with pytest.raises(DataError) as err:
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    msg = str(err.value)
    assert msg.startswith(f"{dataset}/metadata/train/synthetic.tsv:{first_line}: strong: 1 of 4 "
                          f"listed audio files not found in {dataset}/audio/train/synthetic "
                          f"({victim})")
    assert msg.endswith("(set skip_bad_audio, --skip-bad-audio, to train without them)")
    assert "\n" not in msg


def test_unlabelled_names_tsv_and_toml_tsv_check_the_folder(dataset, cache_dir, tmp_path):
    folder = dataset / "audio/train/unlabelled"
    names = sorted(p.name for p in folder.iterdir())
    listing = dataset / "metadata/train/unlabelled.tsv"
    listing.write_text("filename\n" + "".join(f"{n}\n" for n in names))
    (folder / names[1]).unlink()
    with pytest.raises(DataError, match=rf"^{listing}:3: unlabelled: 1 of 4 listed audio "
                                        rf"files not found in {folder} \({names[1]}\)"):
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    tables = []
    for subset, (audio, tsv) in synth.LAYOUT.items():
        tsv_path = listing if subset == "unlabelled" else dataset / tsv
        tables.append(f'[{subset}]\naudio = "{dataset / audio}"\ntsv = "{tsv_path}"\n')
    toml = tmp_path / "map.toml"
    toml.write_text("".join(tables))
    with pytest.raises(DataError, match=rf"^{listing}:3: unlabelled: 1 of 4 "):
        load_dataset(toml, FeatureConfig(), cache_dir=cache_dir)


def test_empty_unlabelled_folder(dataset, cache_dir):
    for p in (dataset / "audio/train/unlabelled").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"unlabelled: empty subset \(no audio files in .*"
                                        r"audio/train/unlabelled\)"):
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)


def test_header_only_tsv_is_an_empty_subset(dataset, cache_dir):
    (dataset / "metadata/train/weak.tsv").write_text("filename\tevent_labels\n")
    with pytest.raises(DataError, match=r"weak: empty subset .*weak\.tsv"):
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)


def test_missing_folder_and_path(dataset, cache_dir, tmp_path):
    shutil.rmtree(dataset / "audio/validation")
    # A listed folder gone as a whole: each file it lists is missing, as when one is.
    with pytest.raises(DataError, match=r"validation.tsv:2: validation: 4 of 4 listed audio "
                                        r"files not found in .*audio/validation \(no such "
                                        r"folder\)"):
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    shutil.rmtree(dataset / "audio/train/unlabelled")  # listed by nothing but its folder
    with pytest.raises(DataError, match=r"unlabelled: audio folder not found"):
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    with pytest.raises(DataError, match=r"nowhere: dataset path not found"):
        load_dataset(tmp_path / "nowhere", FeatureConfig(), cache_dir=cache_dir)


def test_toml_layout(dataset, cache_dir, tmp_path):
    spec = tmp_path / "mine.toml"
    lines = []
    for name, (audio, tsv) in synth.LAYOUT.items():
        lines += [f"[{name}]", f'audio = "dataset/{audio}"']
        if tsv:
            lines.append(f'tsv = "dataset/{tsv}"')
    spec.write_text("\n".join(lines) + "\n")
    from_toml = load_dataset(spec, FeatureConfig(), cache_dir=cache_dir)
    from_root = load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    assert from_toml.root == tmp_path
    for a, b in zip(from_toml.subsets(), from_root.subsets(), strict=True):
        assert a.files == b.files and a.events == b.events
        np.testing.assert_array_equal(np.asarray(a.mels), np.asarray(b.mels))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[strong]\naudio='a'\ntsv='b'\n[weak]\naudio='a'\ntsv='b'\n[unlabeled]\naudio='c'\n",
         "unknown subset [unlabeled]; did you mean [unlabelled]?"),
        ("[strong]\naudio='a'\ntsv='b'\n", "missing table [weak]"),
        ("[strong]\naudio='a'\ntsv='b'\nfolder='x'\n", "[strong] unknown key ('folder')"),
        ("[strong]\naudio='a'\n", "[strong] needs tsv"),
        ("[strong\n", "invalid TOML"),
    ],
)
def test_toml_layout_errors(tmp_path, cache_dir, text, needle):
    spec = tmp_path / "d.toml"
    spec.write_text(text)
    with pytest.raises(DataError) as err:
        load_dataset(spec, FeatureConfig(), cache_dir=cache_dir)
    assert needle in str(err.value) and str(spec) in str(err.value)


def test_embedded_default_generated_once(cache_dir, tiny_preset, monkeypatch):
    monkeypatch.setitem(synth.PRESETS, "tiny", tiny_preset)
    lines: list[str] = []
    ds = load_dataset(None, FeatureConfig(), cache_dir=cache_dir, preset="tiny", synth_seed=4,
                      progress=lines.append)
    assert ds.root == cache_dir / "synth" / "tiny-seed4"
    assert len(ds.strong) == 4 and not ds.strong.cache_hit
    # One line before each one-off slow part, so a first run does not look hung.
    assert lines[0].startswith("generating the 'tiny' synthetic DESED-like set (")
    assert str(ds.root) in lines[0]
    assert lines[1:] == [f"extracting features: {name} ({n} clips, once)" for name, n in
                         (("strong", 4), ("weak", 4), ("unlabelled", 4), ("validation", 4))]

    def no_generation(*args, **kwargs):
        raise AssertionError("regenerated")

    monkeypatch.setattr(synth, "generate", no_generation)
    lines.clear()
    again = load_dataset(None, FeatureConfig(), cache_dir=cache_dir, preset="tiny",
                         synth_seed=4, progress=lines.append)
    assert again.strong.cache_hit and again.root == ds.root and lines == []
    # Only the set (and the lock file generations take turns on): no temp folder left.
    assert sorted(p.name for p in (cache_dir / "synth").iterdir()) == [".tiny-seed4.lock",
                                                                      "tiny-seed4"]


def test_embedded_default_regenerated_when_preset_changes(cache_dir, tiny_preset, monkeypatch):
    monkeypatch.setitem(synth.PRESETS, "tiny", tiny_preset)
    load_dataset(None, FeatureConfig(), cache_dir=cache_dir, preset="tiny")
    smaller = synth.SynthPreset(n_strong=2, n_weak=2, n_unlabelled=2, n_validation=2)
    monkeypatch.setitem(synth.PRESETS, "tiny", smaller)
    ds = load_dataset(None, FeatureConfig(), cache_dir=cache_dir, preset="tiny")
    assert len(ds.strong) == 2 and not ds.strong.cache_hit
    assert sorted(p.name for p in (cache_dir / "synth").iterdir()
                  if not p.name.endswith(".lock")) == ["tiny-seed0"]


def test_unknown_preset(cache_dir):
    with pytest.raises(ConfigError, match="unknown synthetic preset"):
        load_dataset(None, FeatureConfig(), cache_dir=cache_dir, preset="huge")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GREENSED_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GREENSED_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "greensed"
