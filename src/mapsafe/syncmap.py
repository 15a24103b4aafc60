"""placeholder"""
class SyncMap(dict): pass
