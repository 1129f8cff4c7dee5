"""The podku command line: main.py runs the group of base.py, on which every file here
registers its commands (Dokku's namespaces: builder, config, domains, host settings, ps)."""
