"""The model layer: importing, exporting, quantising and verifying the weights backends load.

Everything here runs offline on weights that packages ship (or that a user pulled from the hub
earlier); `livedub models` is its command line.
"""
