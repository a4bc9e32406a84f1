"""`leadflow import`: a CRM export (CSV) of past leads and their outcomes, read through a
column-mapping file, onto the inbound topics, so a team trains its first model on its own past.

- ``mapping``: the mapping file (TOML), loaded and checked with errors naming the bad key.
- ``cells``: CSV cells as values: defaults, times in the export's formats and zone, counts.
- ``rows``: one CSV row → its records (LeadCaptured, ActivityRecorded, LeadStatusChanged),
  validated by the same contract intake applies, or the reason it cannot be imported. Pure.
- ``export``: the whole file: CSV reading, line numbers, duplicates, the rejected-rows file.
- ``publish``: the records onto Kafka (Avro, Confluent framing, keyed by lead id).
- ``command``: the click command.
"""
