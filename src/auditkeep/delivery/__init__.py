"""Getting events out: export formats, destinations (webhook, Splunk HEC, syslog, S3) and
the dispatcher that delivers to them. See docs/delivery.md."""
