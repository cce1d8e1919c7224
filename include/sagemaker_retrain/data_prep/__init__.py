"""Data preparation: stream a CSV data set, validate it, split it and upload it as Linear Learner wants.

One job per module, imported from where it lives (this package re-exports nothing, so importing
``errors`` stays cheap and no module depends on the package as a whole):

* ``source`` opens a local path or an ``s3://`` object;
* ``chunks`` cuts the stream into the header and chunks of whole lines;
* ``csv_rows`` parses the header and each chunk into validated float rows (fast and careful paths);
* ``checks`` holds the data set's rules (target, labels, totals);
* ``splitting`` draws rows into train/validation/test, seeded;
* ``encoding`` turns rows into CSV or RecordIO-protobuf bytes;
* ``parts`` writes part files; ``upload`` sends them to S3;
* ``prepare`` wires them together (``prepare_dataset``, ``prepare_and_upload``);
* ``errors`` holds ``DataValidationError``.
"""
