"""placeholder"""
class ShardedMap(dict): pass
