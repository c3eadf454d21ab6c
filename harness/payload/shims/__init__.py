"""Stand-in modules that the harness writes next to upstream code it runs in a container.

Each subpackage holds plain files that are copied, as text, into a run's stubs directory and
imported there under their upstream names. The harness itself never imports them.
"""
