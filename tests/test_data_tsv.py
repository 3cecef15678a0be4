from __future__ import annotations

from pathlib import Path

import pytest

from greensed.data.spec import CLASS_INDEX
from greensed.data.tsv import read_durations_tsv, read_strong_tsv, read_weak_tsv
from greensed.errors import DataError

STRONG_HEADER = "filename\tonset\toffset\tevent_label\n"


def write(tmp_path: Path, text: str, name: str = "meta.tsv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_strong_rows_in_order_with_no_event_rows(tmp_path):
    p = write(tmp_path, STRONG_HEADER
              + "a.wav\t0.5\t1.25\tDog\n"
              + "a.wav\t2\t3\tSpeech\n"
              + "b.wav\t\t\t\n"  # DESED: a clip with no events
              + "c.wav\n"
              + "\n")
    rows = read_strong_tsv(p)
    assert [r.filename for r in rows] == ["a.wav", "a.wav", "b.wav", "c.wav"]
    assert rows[0].event == (CLASS_INDEX["Dog"], 0.5, 1.25)
    assert rows[1].event == (CLASS_INDEX["Speech"], 2.0, 3.0)
    assert rows[2].event is None and rows[3].event is None
    assert [r.line for r in rows] == [2, 3, 4, 5]


def test_columns_found_by_header_name(tmp_path):
    p = write(tmp_path, "event_label\tfilename\textra\toffset\tonset\nCat\tx.wav\tz\t4\t1\n")
    (row,) = read_strong_tsv(p)
    assert row.filename == "x.wav" and row.event == (CLASS_INDEX["Cat"], 1.0, 4.0)


def test_weak_rows_dedup_and_sort(tmp_path):
    p = write(tmp_path, "filename\tevent_labels\nw.wav\tSpeech,Dog,Speech\nv.wav\tCat\n")
    rows = read_weak_tsv(p)
    assert rows[0].classes == (CLASS_INDEX["Dog"], CLASS_INDEX["Speech"])
    assert rows[1].classes == (CLASS_INDEX["Cat"],)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("filename\tonset\tevent_label\na.wav\t1\tDog\n", "meta.tsv:1: missing column 'offset'"),
        (STRONG_HEADER + "a.wav\t1\t2\n", "meta.tsv:2: missing column 'event_label'"),
        (STRONG_HEADER + "a.wav\t1\t\tDog\n", "meta.tsv:2: missing column 'offset'"),
        (STRONG_HEADER + "a.wav\tone\t2\tDog\n", "meta.tsv:2: onset is not a number ('one')"),
        (STRONG_HEADER + "a.wav\t1\tnan\tDog\n", "meta.tsv:2: offset is not a finite number"),
        (STRONG_HEADER + "a.wav\t3\t2\tDog\n", "meta.tsv:2: onset > offset (3 > 2)"),
        (STRONG_HEADER + "a.wav\t-1\t2\tDog\n", "meta.tsv:2: negative onset (-1)"),
        (STRONG_HEADER + "a.wav\t1\t2\tDog\nb.wav\t1\t2\tDogs\n",
         "meta.tsv:3: unknown class label ('Dogs'); did you mean 'Dog'?"),
        (STRONG_HEADER + "a.wav\t1\t2\tvacuum_cleaner\n", "did you mean 'Vacuum_cleaner'?"),
        (STRONG_HEADER + "\t1\t2\tDog\n", "meta.tsv:2: empty filename"),
        ("", "meta.tsv: empty file"),
        ("\n  \n", "meta.tsv: empty file"),
    ],
)
def test_strong_errors(tmp_path, body, needle):
    p = write(tmp_path, body)
    with pytest.raises(DataError) as err:
        read_strong_tsv(p)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("filename\tlabels\nw.wav\tDog\n", "meta.tsv:1: missing column 'event_labels'"),
        ("filename\tevent_labels\nw.wav\n", "meta.tsv:2: missing column 'event_labels'"),
        ("filename\tevent_labels\nw.wav\t\n", "meta.tsv:2: missing column 'event_labels'"),
        ("filename\tevent_labels\nw.wav\tDog,Blendr\n",
         "meta.tsv:2: unknown class label ('Blendr'); did you mean 'Blender'?"),
        ("filename\tevent_labels\nw.wav\tTrain_horn\n", "unknown class label ('Train_horn')"),
        ("", "meta.tsv: empty file"),
    ],
)
def test_weak_errors(tmp_path, body, needle):
    p = write(tmp_path, body)
    with pytest.raises(DataError) as err:
        read_weak_tsv(p)
    assert needle in str(err.value)


def test_missing_tsv(tmp_path):
    with pytest.raises(DataError, match="tsv not found"):
        read_weak_tsv(tmp_path / "nope.tsv")


def test_durations_tsv_as_the_baseline_writes_it(tmp_path):
    # pandas to_csv(sep="\t", index=False, float_format="%.1f") of (filename, duration).
    p = write(tmp_path, "filename\tduration\na.wav\t10.0\nb.wav\t3.2\n\nc.wav\t7\n")
    assert read_durations_tsv(p) == {"a.wav": 10.0, "b.wav": 3.2, "c.wav": 7.0}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("filename\tlength\na.wav\t1.0\n", ":1: missing column 'duration'"),
        ("filename\tduration\na.wav\tten\n", ":2: duration is not a number ('ten')"),
        ("filename\tduration\na.wav\t0.0\n", ":2: zero duration (0.0)"),
        ("filename\tduration\na.wav\t-1\n", ":2: negative duration (-1)"),
        ("filename\tduration\na.wav\t\n", ":2: missing column 'duration' (empty value)"),
        ("filename\tduration\na.wav\t1\nb.wav\t2\na.wav\t1\n",
         ":4: duplicate filename (a.wav; first at line 2)"),
    ],
)
def test_durations_tsv_errors(tmp_path, body, needle):
    p = write(tmp_path, body)
    with pytest.raises(DataError) as err:
        read_durations_tsv(p)
    assert str(err.value).startswith(str(p)) and needle in str(err.value)
