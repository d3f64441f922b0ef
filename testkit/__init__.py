"""Servers on loopback for the tests and the benchmark: free ports, process control, a private
nginx and a private SeaweedFS.

Standard library only, and nothing here imports imagedata: ``bench/`` runs this package with a
system python that cannot import the service. Not part of the installed distribution.
"""
