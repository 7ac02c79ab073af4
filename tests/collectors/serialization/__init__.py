"""Tests of the serialization-safety scanners."""
