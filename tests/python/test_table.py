"""Observation tables (rtda_client.table): pandas DataFrames, xarray Datasets and dicts of
columns become ObservationColumns; every bad value is refused before anything is sent, with
the column, the row and the value in the message."""

import unittest

import numpy as np
import pandas as pd
import xarray as xr

import rtda_client as rc
from rtda_client.table import ObservationTableError, observation_table


def frame(n=4, **changes):
    df = pd.DataFrame({
        "time": np.full(n, 43200.0), "level": np.arange(n) % 2,
        "x": np.linspace(0, 1e6, n), "y": np.linspace(5e5, 2e6, n),
        "value": np.linspace(-3, 3, n), "error_sd": np.full(n, 1.0),
        "operator": ["linear_K"] * n, "id": np.arange(100, 100 + n, dtype=np.uint64)})
    for col, (row, value) in changes.items():
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    return df


class TableTest(unittest.TestCase):
    def assertRefused(self, data, *fragments, **kw):
        with self.assertRaises(ObservationTableError) as cm:
            observation_table(data, **kw)
        msg = str(cm.exception)
        for f in fragments:
            self.assertIn(f, msg)
        return msg

    def test_dataframe_becomes_columns(self):
        df = frame()
        df["operator"] = ["linear_K", "ARCTAN", 2, "OPERATOR_IDENTITY"]
        t = observation_table(df)
        self.assertEqual(len(t), 4)
        self.assertEqual(t.operator.tolist(), [rc.pb.OPERATOR_LINEAR_K, rc.pb.OPERATOR_ARCTAN,
                                               rc.pb.OPERATOR_IDENTITY,
                                               rc.pb.OPERATOR_IDENTITY])
        c = t.columns(1, 3)
        self.assertEqual(list(c.id), [101, 102])
        self.assertEqual(list(c.level), [1, 0])
        self.assertEqual(list(c.x_m), df["x"].tolist()[1:3])
        self.assertEqual(list(c.value), df["value"].tolist()[1:3])
        # The message round-trips: what is sent is what the table holds.
        back = rc.pb.ObservationColumns()
        back.ParseFromString(c.SerializeToString())
        self.assertEqual(list(back.op), [rc.pb.OPERATOR_ARCTAN, rc.pb.OPERATOR_IDENTITY])

    def test_xarray_dataset_and_dict(self):
        df = frame(6)
        df["operator"] = np.array([0, 1, 2, 0, 1, 2], dtype=np.int8)
        ds = xr.Dataset({c: ("obs", df[c].to_numpy()) for c in df.columns})
        t = observation_table(ds)
        self.assertEqual(t.id.tolist(), list(range(100, 106)))
        self.assertEqual(t.operator.tolist(), [0, 1, 2, 0, 1, 2])
        t2 = observation_table({c: df[c].to_numpy() for c in df.columns})
        self.assertEqual(t2.level.tolist(), t.level.tolist())
        ds_bad = ds.assign(level=("obs", np.array([0, 1, 0, 1, 7, 0])))
        self.assertRefused(ds_bad, "column 'level'", "obs index 4", "value 7",
                           "0 (surface) or 1 (lid)")

    def test_missing_columns_named(self):
        self.assertRefused(frame().drop(columns=["error_sd", "id"]),
                           "missing column(s) 'error_sd', 'id'")

    def test_each_bad_value_names_column_row_value(self):
        cases = [
            ({"value": (2, float("nan"))}, "column 'value'", "row 2", "nan", "finite"),
            ({"time": (1, "noon")}, "column 'time'", "row 1", "'noon'", "model seconds"),
            ({"x": (3, -5.0)}, "column 'x'", "row 3", "-5.0", "[0, L)"),
            ({"error_sd": (0, 0.0)}, "column 'error_sd'", "row 0", "0.0", "> 0"),
            ({"level": (1, 2)}, "column 'level'", "row 1", "value 2"),
            ({"level": (1, 0.5)}, "column 'level'", "row 1", "0.5"),
            ({"operator": (2, "radar")}, "column 'operator'", "row 2", "'radar'",
             "linear_K, arctan, identity"),
            ({"operator": (0, 9)}, "column 'operator'", "row 0", "value 9"),
            ({"id": (3, -1)}, "column 'id'", "row 3", "-1", "non-negative integer"),
            ({"id": (3, 100)}, "column 'id'", "row 3", "unique", "row 0"),
        ]
        for changes, *fragments in cases:
            with self.subTest(changes=changes):
                self.assertRefused(frame(**changes), *fragments)

    def test_index_labels_are_the_rows_named(self):
        df = frame()
        df.index = ["a", "b", "c", "d"]
        df.loc["c", "value"] = np.inf
        self.assertRefused(df, "column 'value'", "row 'c'", "inf")

    def test_domain_bound(self):
        self.assertRefused(frame(), "column 'y'", "row 2", "L = 1.5e+06", "and 1 more rows",
                           domain_m=1.5e6)
        self.assertEqual(len(observation_table(frame(), domain_m=2.1e6)), 4)

    def test_more_rows_counted(self):
        df = frame(5)
        df["error_sd"] = [1.0, -1.0, -2.0, 1.0, 0.0]
        msg = self.assertRefused(df, "row 1", "value -1.0")
        self.assertIn("and 2 more rows", msg)

    def test_nothing_to_send(self):
        with self.assertRaises(ObservationTableError):
            rc.feed_table(frame(0), "ipc:///nonexistent/ingest.sock")

    def test_not_a_table(self):
        self.assertRefused([1, 2, 3], "DataFrame", "list")


if __name__ == "__main__":
    unittest.main()
