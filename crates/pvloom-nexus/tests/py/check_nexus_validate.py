"""Validates a NeXus file against the NeXus base classes (nexusformat's validator, the one
`nxvalidate` uses) and prints its report, one "LEVEL|message" per line, followed by
"warnings=W errors=E".

usage: check_nexus_validate.py FILE
"""
import io
import logging
import sys

from nexusformat.nexus import validate

stream = io.StringIO()
handler = logging.StreamHandler(stream)
handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
validate.logger.handlers[:] = [handler]
validate.logger.setLevel(logging.WARNING)
result = validate.validate_file(sys.argv[1])
report = stream.getvalue()
print(report)
if result is None:
    print("warnings=? errors=?")
    sys.exit(2)
warnings, errors = result
print(f"warnings={warnings} errors={errors}")
