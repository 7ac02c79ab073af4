"""Serialization safety: can loading these files run code, or do they hide a payload?"""
