"""flake8 plugin for the MS rules (not implemented yet)."""


class MapsafeFlake8:
    name = "mapsafe"
    version = "0.1.0"

    def __init__(self, tree):
        self.tree = tree

    def run(self):
        return iter(())
