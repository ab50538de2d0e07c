"""rtda_client: the rtda service from Python (docs/python.md).

    import rtda_client as rc
    for ds in rc.subscribe("tcp://127.0.0.1:5561", count=3):   # xarray.Datasets
        print(ds.cycle.item(), float(ds.rmse_analysis))
    rc.feed_table(df, "tcp://127.0.0.1:5560", source="my-feeder", end_of_window=t_k)
    print(rc.status_text(rc.status("tcp://127.0.0.1:5562")))
    archive = rc.open_archive("rtda-data/analyses")             # one Dataset along cycle

The modules: wire (the generated protobuf module `pb` and sockets), keys (CURVE key files),
files (observation files and nature runs), table (observations from pandas/xarray), feed,
subscribe, control (control verbs, status as text and JSON), archive (open_archive), maps
(field maps), local (a small service on this machine), cli (python3 -m rtda_client).
"""

from . import rtda_pb2 as pb
from .archive import archive_files, concat_analyses, open_archive
from .control import (COMMANDS, control, counters, latest_analysis, status, status_dict,
                      status_json, status_text)
from .feed import (Feeder, FeedSummary, feed_file, feed_table, make_batch,
                   make_observation)
from .files import NatureRun, ObservationFile, read_observation_file
from .keys import CurveKeys, KeyFileError, curve_from_options, load_keypair, load_public_key
from .subscribe import (TOPICS, Subscriber, analysis_dataset, analysis_line, subscribe,
                        subscribe_async)
from .table import COLUMNS, ObservationTable, ObservationTableError, observation_table
from .wire import (DEFAULT_CONTROL, DEFAULT_INGEST, DEFAULT_PUBLISH, ack_status_name,
                   load_proto, request, send_raw)

__version__ = "0.1.0"

__all__ = [
    "pb", "archive_files", "concat_analyses", "open_archive", "COMMANDS", "control", "counters",
    "latest_analysis", "status", "status_dict", "status_json", "status_text", "Feeder",
    "FeedSummary", "feed_file", "feed_table", "make_batch", "make_observation", "NatureRun",
    "ObservationFile", "read_observation_file", "CurveKeys", "KeyFileError",
    "curve_from_options", "load_keypair", "load_public_key", "TOPICS", "Subscriber",
    "analysis_dataset", "analysis_line", "subscribe", "subscribe_async", "COLUMNS",
    "ObservationTable", "ObservationTableError", "observation_table", "DEFAULT_CONTROL",
    "DEFAULT_INGEST", "DEFAULT_PUBLISH", "ack_status_name", "load_proto", "request",
    "send_raw",
]
