"""The evaluation's reuse mechanism: one table and note per model, in a folder named
after the settings the part depends on."""

from __future__ import annotations

import pandas as pd

from personasim.evaluation.checkpoints import UnitStore


def test_a_unit_is_computed_once_and_restored_as_saved(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"user_id": ["u1"], "predicted": [3.5]}), {"kind": "baseline"}

    store = UnitStore(tmp_path, "ratings", {"mf_epochs": 20}, [1, 5])
    first = store.get("biased_mf", compute)
    again = UnitStore(tmp_path, "ratings", {"mf_epochs": 20}, [1, 5]).get("biased_mf", compute)
    assert calls == [1]
    pd.testing.assert_frame_equal(first[0], again[0])
    assert again[1] == {"kind": "baseline"}


def test_other_settings_are_another_folder(tmp_path):
    frame = pd.DataFrame({"x": [1]})
    UnitStore(tmp_path, "ratings", {"mf_epochs": 20}).save("biased_mf", frame)
    assert UnitStore(tmp_path, "ratings", {"mf_epochs": 21}).restore("biased_mf") is None
    assert UnitStore(tmp_path, "taste", {"mf_epochs": 20}).restore("biased_mf") is None
    assert UnitStore(tmp_path, "ratings", {"mf_epochs": 20}).restore("biased_mf") is not None


def test_a_table_without_its_note_is_not_restored(tmp_path):
    store = UnitStore(tmp_path, "ratings", {})
    store.save("item_bias", pd.DataFrame({"x": [1]}))
    (store.folder / "item_bias.json").unlink()  # killed between the table and the note
    assert store.restore("item_bias") is None
