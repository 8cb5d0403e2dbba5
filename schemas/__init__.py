"""The Avro schemas (*.avsc): the wire contract between stages, shipped as package data.

Loaded with importlib.resources (streams/codecs.py), so an installed wheel finds them
without the source tree.
"""
