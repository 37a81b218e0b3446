"""Tests of sip2proto: the SIP2 codec and per-ILS profiles."""
