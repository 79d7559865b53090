"""Runs every query of a postgres_exporter queries.yaml through psql and checks what the exporter
would read: the columns, in order, are the metrics the file lists; LABEL values are present; every
other value is a number; each query returns at least one row.

    python3 tests/exporter_queries.py contrib/postgres_exporter/queries.yaml psql -h ... -U role -d db
"""

import csv
import io
import subprocess
import sys

import yaml


def run(psql, query):
    out = subprocess.run(psql + ["-v", "ON_ERROR_STOP=1", "--csv", "-c", query],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    rows = list(csv.reader(io.StringIO(out.stdout)))
    return rows[0], rows[1:]


def check(name, spec, psql):
    metrics = [(k, v["usage"]) for m in spec["metrics"] for k, v in m.items()]
    header, rows = run(psql, spec["query"])
    want = [k for k, _ in metrics]
    if header != want:
        return f"columns {header}, the file lists {want}"
    if not rows:
        return "no row"
    for row in rows:
        for (col, usage), value in zip(metrics, row):
            if usage == "LABEL":
                if value == "":
                    return f"label {col} is empty in {row}"
            else:
                try:
                    float(value)
                except ValueError:
                    return f"{col} = {value!r} is not a number, in {row}"
    return None


def main():
    path, psql = sys.argv[1], sys.argv[2:]
    failed = 0
    for name, spec in yaml.safe_load(open(path)).items():
        try:
            problem = check(name, spec, psql)
        except RuntimeError as e:
            problem = str(e)
        print(f"      {name}: {problem or 'ok'}")
        failed += problem is not None
    sys.exit(1 if failed else 0)


main()
