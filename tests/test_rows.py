"""The result row: report.json's `results[]` keys, results.csv's columns, older reports."""

import dataclasses
import json

import pandas as pd
import pytest
from rowmaker import make_row

from nccldoctor.report import Report
from nccldoctor.reports.csv_report import CsvSink
from nccldoctor.reports.json_report import JsonSink, load
from nccldoctor.rows import COLUMNS, LABELS, Row, rows_frame

# What report.json held for a main-run row before Row existed (README's example, one row).
OLDER_ROW = {
    "probe": "all_reduce",
    "size_bytes": 8388608,
    "count": 2097152,
    "dtype": "float32",
    "op": "sum",
    "root": -1,
    "inplace": True,
    "time_us": 14644.17,
    "algbw_gbps": 0.5728,
    "busbw_gbps": 0.8592,
    "wrong": 0,
    "min_time_us": 14012.61,
    "max_time_us": 15799.31,
    "slowest_rank": 0,
    "wrong_ranks": [],
    "wrong_sources": [],
    "iters": 20,
    "world_size": 4,
    "setting": "",
}
SWEPT = make_row().labelled(sweep="settings", setting="NCCL_ALGO=Ring", repeat=2)


def report_of(rows):
    return Report(job={"nodes": []}, environment={}, results=rows, findings=[])


def test_columns_are_the_fields_in_the_contract_order_with_the_sweep_labels_last():
    assert (*OLDER_ROW, "sweep", "repeat") == COLUMNS
    assert tuple(f.name for f in dataclasses.fields(Row)) == COLUMNS


def test_a_main_run_row_has_exactly_the_keys_report_json_always_had():
    row = Row.from_dict(OLDER_ROW)
    assert row.sweep is None and row.repeat is None
    assert row.to_dict() == OLDER_ROW and list(row.to_dict()) == list(OLDER_ROW)


def test_a_swept_row_adds_its_labels_after_the_measured_fields():
    data = SWEPT.to_dict()
    assert list(data) == list(COLUMNS)
    assert (data["sweep"], data["setting"], data["repeat"]) == ("settings", "NCCL_ALGO=Ring", 2)
    assert Row.from_dict(data) == SWEPT
    ifaces = make_row().labelled(sweep="ifaces", setting="GLOO_SOCKET_IFNAME=eth0").to_dict()
    assert list(ifaces) == list(COLUMNS[:-1])  # the per-NIC sweep has no rounds


def test_labelling_copies_and_refuses_a_name_that_is_not_a_field():
    row = make_row()
    assert row.labelled(setting="defaults").setting == "defaults" and row.setting == ""
    with pytest.raises(TypeError):
        row.labelled(round=1)


def test_an_unchecked_row_keeps_wrong_as_null():
    data = make_row(wrong=None).to_dict()
    assert "wrong" in data and data["wrong"] is None
    assert Row.from_dict(json.loads(json.dumps(data))).wrong is None


def test_unknown_keys_from_a_newer_report_are_ignored_and_a_missing_measurement_is_an_error():
    assert Row.from_dict(OLDER_ROW | {"energy_j": 1.5}) == Row.from_dict(OLDER_ROW)
    without_setting = {k: v for k, v in OLDER_ROW.items() if k != "setting"}
    assert Row.from_dict(without_setting).setting == ""
    with pytest.raises(TypeError):
        Row.from_dict({k: v for k, v in OLDER_ROW.items() if k != "busbw_gbps"})


def test_rows_survive_report_json_save_and_load(tmp_path):
    rows = [make_row(), make_row(wrong=None, inplace=False), SWEPT]
    JsonSink().emit(report_of(rows), tmp_path)
    saved = json.loads((tmp_path / "report.json").read_text())["results"]
    assert [list(r) for r in saved] == [list(OLDER_ROW)] * 2 + [list(COLUMNS)]
    assert load(tmp_path).results == rows


def test_an_older_report_json_without_the_sweep_labels_loads(tmp_path):
    JsonSink().emit(report_of([]), tmp_path)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"results": [OLDER_ROW]}))
    (row,) = load(tmp_path).results
    assert row == Row.from_dict(OLDER_ROW) and load(tmp_path).probe_results == [row]


def test_csv_header_is_the_columns_and_a_run_without_a_sweep_has_no_label_columns(tmp_path):
    CsvSink().emit(report_of([make_row(), SWEPT]), tmp_path)
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    assert lines[1].endswith(",5,4,,,") and lines[2].endswith(",NCCL_ALGO=Ring,settings,2")  # 2, not 2.0
    for rows in ([make_row()], []):
        CsvSink().emit(report_of(rows), tmp_path)
        header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
        assert header == [c for c in COLUMNS if c not in LABELS]


def test_the_frame_has_every_column_and_keeps_whole_numbers_whole():
    frame = rows_frame([make_row(wrong=None), SWEPT])
    assert list(frame.columns) == list(COLUMNS)
    assert str(frame["repeat"].dtype) == "Int64" and frame["repeat"].tolist() == [pd.NA, 2]
    assert pd.isna(frame.loc[0, "wrong"]) and frame.loc[1, "wrong"] == 0
    assert list(rows_frame([]).columns) == list(COLUMNS)
