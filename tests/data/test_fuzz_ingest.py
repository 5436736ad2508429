"""Fuzzing the CSV ingestion: whatever the bytes, the reader either reads the log or
refuses it with a documented error (DataError / ColumnError / ConfigError naming the
file); it never crashes with anything else. Both the in-memory and the out-of-core path."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personasim.config import DataConfig, ScaleConfig, SplitConfig
from personasim.data.log import load_log
from personasim.data.outofcore import ingest_out_of_core
from personasim.data.sources import log_spec
from personasim.errors import PersonaSimError

HEADER = ["user_id", "item_id", "rating", "timestamp"]

odd = st.one_of(
    st.sampled_from(["", " ", "3.5", "-1", "nan", "inf", "1e3", "x", "null", "  7 ", '"a,b"']),
    st.sampled_from(["1990-01-01", "2000-02-30", '"q"', "\t", "é"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)
good = {
    "user_id": st.sampled_from(["u1", "u2", "u3", "7"]),
    "item_id": st.sampled_from(["i1", "i2", "i3", "i4", "i5"]),
    "rating": st.sampled_from(["1", "2", "3", "4", "5", "4.0"]),
    "timestamp": st.integers(0, 2_000_000_000).map(str),
}


@st.composite
def row(draw, header: list[str]) -> list[str]:
    fields = [draw(odd if draw(st.integers(0, 39)) == 0 else good.get(h, odd)) for h in header]
    if draw(st.integers(0, 49)) == 0:  # a field too many or too few
        fields = fields[:-1] if draw(st.booleans()) else [*fields, "extra"]
    return fields


@st.composite
def csv_file(draw) -> tuple[bytes, str]:
    header = draw(
        st.one_of(st.just(HEADER), st.lists(st.sampled_from(HEADER + ["x", ""]), max_size=5))
    )
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    lines = [delimiter.join(header)]
    lines += [delimiter.join(r) for r in draw(st.lists(row(header), min_size=1, max_size=12))]
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))
    data = text.encode("utf-8")
    if draw(st.integers(0, 7)) == 0:  # stray bytes: invalid UTF-8, NULs, a BOM
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\x00", b"\xef\xbb\xbf", b"\r"]))
            + data[at:]
        )
    return data, {",": ".csv", ";": ".txt", "\t": ".tsv"}[delimiter]


def _read_both(path: Path, scratch: Path) -> None:
    spec = log_spec(DataConfig(dataset="custom", path=path))
    for reader in (
        lambda: load_log(spec),
        lambda: ingest_out_of_core(
            spec,
            scratch / "out",
            split=SplitConfig(users=0, min_ratings=1, max_ratings=0),
            seed=0,
            scale=ScaleConfig(tables="duckdb", memory_limit="256MB"),
            scratch=scratch / "scratch",
        ),
    ):
        try:
            reader()
        except PersonaSimError as e:
            assert str(e), "an error without a message"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_file())
def test_no_crash_on_arbitrary_csv(file: tuple[bytes, str]) -> None:
    data, suffix = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"log{suffix}"
        path.write_bytes(data)
        (Path(tmp) / "out").mkdir()
        _read_both(path, Path(tmp))
